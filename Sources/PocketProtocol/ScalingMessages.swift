import NIOCore

/// One scaling decision of the controller, for `pocket status --events` and the elasticity plots.
public struct ScalingEvent: WireMessage, Hashable {
    public enum Action: UInt8, Sendable, CaseIterable, CustomStringConvertible {
        /// Servers asked of the provisioner.
        case launch = 1
        /// A server stops taking new blocks; its data stays readable.
        case drain = 2
        /// A drained server held nothing live any more and was stopped.
        case release = 3
        /// A draining server taken back into service instead of starting a new one.
        case reactivate = 4
        /// The provisioner could not do what was asked.
        case failed = 5

        public var description: String {
            switch self {
            case .launch: "launch"
            case .drain: "drain"
            case .release: "release"
            case .reactivate: "reactivate"
            case .failed: "failed"
            }
        }
    }

    /// Milliseconds since the Unix epoch.
    public var time: Int64
    public var action: Action
    public var kind: ServerKind
    /// The storage tier (metadata servers: dram).
    public var tier: Tier
    public var count: UInt32
    /// Active servers of the kind and tier after the action (for a launch: once they have come).
    public var servers: UInt32
    /// The utilisation that led to it (the pool's highest: CPU, network or capacity), 0–1+.
    public var utilisation: Double
    public var reason: String

    public init(
        time: Int64, action: Action, kind: ServerKind, tier: Tier, count: UInt32, servers: UInt32,
        utilisation: Double, reason: String
    ) {
        self.time = time
        self.action = action
        self.kind = kind
        self.tier = tier
        self.count = count
        self.servers = servers
        self.utilisation = utilisation
        self.reason = reason
    }

    public init(from buffer: inout ByteBuffer) throws {
        time = try buffer.readWire()
        action = try buffer.readWireEnum(Action.self)
        kind = try buffer.readWireEnum(ServerKind.self)
        tier = try buffer.readWireEnum(Tier.self)
        count = try buffer.readWire()
        servers = try buffer.readWire()
        utilisation = try buffer.readWireDouble()
        reason = try buffer.readWireString()
    }

    public func encode(into writer: inout WireWriter) {
        writer.buffer.writeInteger(time)
        writer.buffer.writeInteger(action.rawValue)
        writer.buffer.writeInteger(kind.rawValue)
        writer.buffer.writeInteger(tier.rawValue)
        writer.buffer.writeInteger(count)
        writer.buffer.writeInteger(servers)
        writer.buffer.writeWireDouble(utilisation)
        writer.buffer.writeWireString(reason)
    }
}

/// The controller's scaling decisions since `since` (Unix milliseconds), oldest first.
public struct ListEvents: WireRequest, Hashable {
    public typealias Response = EventList
    public static let opcode = Opcode.listEvents

    public var since: Int64

    public init(since: Int64 = 0) { self.since = since }

    public init(from buffer: inout ByteBuffer) throws {
        since = try buffer.readWire()
    }

    public func encode(into writer: inout WireWriter) {
        writer.buffer.writeInteger(since)
    }
}

public struct EventList: WireMessage, Hashable {
    public var events: [ScalingEvent]

    public init(events: [ScalingEvent]) { self.events = events }

    public init(from buffer: inout ByteBuffer) throws {
        events = try buffer.readWireArray(minimumElementSize: 29) { try ScalingEvent(from: &$0) }
    }

    public func encode(into writer: inout WireWriter) {
        writer.buffer.writeInteger(UInt32(events.count))
        for event in events { event.encode(into: &writer) }
    }
}
