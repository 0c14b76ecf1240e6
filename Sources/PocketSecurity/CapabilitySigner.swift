import Crypto
import Foundation
import PocketProtocol

/// Signs and checks capabilities with the cluster key (HMAC-SHA256, first 16 bytes).
public struct CapabilitySigner: Sendable {
    private let keyed: KeyedMAC
    /// How long the capabilities handed to clients stay valid.
    public var lifetime: Duration

    public init(key: ClusterKey, lifetime: Duration = .seconds(3600)) {
        keyed = KeyedMAC(HMAC<SHA256>(key: key.key))
        self.lifetime = lifetime
    }

    /// A capability valid from `now` (seconds since the epoch; tests pass their own) for `lifetime`.
    public func sign(
        job: JobID, rights: Capability.Rights, blocks: ClosedRange<BlockID>, lifetime: Duration? = nil,
        now: Int64 = Capability.now()
    ) -> Capability {
        let seconds = (lifetime ?? self.lifetime).components.seconds
        var capability = Capability(job: job, rights: rights, blocks: blocks, expiry: now + seconds)
        capability.mac = mac(capability)
        return capability
    }

    /// A `control` capability for what the controller asks of a metadata server about `job` (0:
    /// the cluster as a whole); short-lived, since each is made for one request.
    public func control(job: JobID = 0) -> Capability {
        sign(job: job, rights: .control, blocks: Capability.everyBlock, lifetime: .seconds(60))
    }

    /// Throws `unauthorized` unless `capability` is genuine, unexpired at `now`, for `job` and
    /// grants `rights`.
    public func check(
        _ capability: Capability, job: JobID, rights: Capability.Rights, now: Int64 = Capability.now()
    ) throws(PocketError) {
        guard capability.job == job, capability.rights.isSuperset(of: rights) else {
            throw PocketError(.unauthorized, "capability does not grant \(rights) on job \(job)")
        }
        guard capability.expiry >= now else {
            throw PocketError(.unauthorized, "capability expired")
        }
        // Compared in constant time: a forger learns nothing from how long a refusal takes.
        guard Self.equal(capability.mac, mac(capability)) else {
            throw PocketError(.unauthorized, "capability signature does not verify")
        }
    }

    /// Checks that `capabilities` together grant `rights` on every block in `ids` of `job`. Each
    /// capability is verified once however many blocks it covers. (Inlinable, so that it is
    /// specialised for the caller's sequence: unspecialised, its iteration cost more than the MAC.)
    @inlinable
    public func check(
        _ capabilities: [Capability], covering ids: some Sequence<BlockID>, job: JobID, rights: Capability.Rights,
        now: Int64 = Capability.now()
    ) throws(PocketError) {
        var verified = [Bool](repeating: false, count: capabilities.count)
        for id in ids {
            guard let index = capabilities.firstIndex(where: { $0.covers(id, rights) }) else {
                throw PocketError(.unauthorized, "no capability grants \(rights) on block \(id) of job \(job)")
            }
            if !verified[index] {
                try check(capabilities[index], job: job, rights: rights, now: now)
                verified[index] = true
            }
        }
    }

    func mac(_ capability: Capability) -> UInt128 {
        // A copy of the keyed state: its hash contexts are copied on write, the original stays as made.
        var hmac = keyed.hmac
        capability.withSignedBytes { hmac.update(data: $0) }
        return hmac.finalize().withUnsafeBytes { bytes in
            bytes.prefix(16).reduce(UInt128(0)) { $0 << 8 | UInt128($1) }
        }
    }

    static func equal(_ a: UInt128, _ b: UInt128) -> Bool {
        // One XOR over the whole value: no early exit on the first differing byte.
        (a ^ b) == 0
    }

}

/// An HMAC with the key already folded in, made once: keying costs as much as the MAC of a
/// capability itself, and a storage server checks one on every request. Only copies of it are
/// ever updated (`HMAC` is a value whose hash contexts are copied on write), so sharing it is safe.
private struct KeyedMAC: @unchecked Sendable {
    let hmac: HMAC<SHA256>
    init(_ hmac: HMAC<SHA256>) { self.hmac = hmac }
}
