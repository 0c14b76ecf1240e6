/// Every operation of the protocol, in one table. Ranges group them by the server that serves them:
/// 0x01–0x1F controller, 0x20–0x2F metadata (from the controller), 0x30–0x4F metadata (from clients),
/// 0x50–0x5F storage.
public struct Opcode: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }
    init(_ rawValue: UInt8) { self.rawValue = rawValue }

    // Any server
    public static let ping = Opcode(0x01)
    // Controller
    public static let registerServer = Opcode(0x02)
    public static let heartbeat = Opcode(0x03)
    public static let registerJob = Opcode(0x04)
    public static let deregisterJob = Opcode(0x05)
    public static let lookupJob = Opcode(0x06)
    public static let listJobs = Opcode(0x07)
    public static let clusterStatus = Opcode(0x08)
    public static let updateHints = Opcode(0x09)
    public static let listEvents = Opcode(0x0A)
    // Metadata, from the controller
    public static let assignJob = Opcode(0x20)
    public static let dropJob = Opcode(0x21)
    public static let serverTable = Opcode(0x22)
    public static let setWeightMap = Opcode(0x23)
    // Metadata, from clients
    public static let putInline = Opcode(0x30)
    public static let getObject = Opcode(0x31)
    public static let allocateBlocks = Opcode(0x32)
    public static let commitObject = Opcode(0x33)
    public static let abortBlocks = Opcode(0x34)
    public static let stat = Opcode(0x35)
    public static let list = Opcode(0x36)
    public static let delete = Opcode(0x37)
    public static let rename = Opcode(0x38)
    public static let makeDirectory = Opcode(0x39)
    public static let getServers = Opcode(0x3A)
    public static let create = Opcode(0x3B)
    public static let makeSymlink = Opcode(0x3C)
    public static let setAttributes = Opcode(0x3D)
    public static let authorizeBlocks = Opcode(0x3E)
    // Storage
    public static let writeBlocks = Opcode(0x50)
    public static let readBlocks = Opcode(0x51)
    public static let freeBlocks = Opcode(0x52)
    public static let freeJob = Opcode(0x53)
    public static let storageStats = Opcode(0x54)

    public var description: String { "0x" + String(rawValue, radix: 16) }
}
