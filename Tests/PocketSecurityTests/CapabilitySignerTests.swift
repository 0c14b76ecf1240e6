import Crypto
import Foundation
import PocketProtocol
import Testing

@testable import PocketSecurity

@Suite struct CapabilitySignerTests {
    let signer = CapabilitySigner(key: try! ClusterKey(bytes: Array(repeating: 7, count: 32)))

    @Test func aSignedCapabilityChecks() throws {
        let capability = signer.sign(job: 9, rights: [.read, .write], blocks: 10...20)
        try signer.check(capability, job: 9, rights: .write)
        try signer.check([capability], covering: [10, 15, 20], job: 9, rights: .read)
    }

    @Test func everyChangedFieldBreaksTheSignature() {
        let genuine = signer.sign(job: 9, rights: .read, blocks: 10...20)
        var forgeries: [Capability] = []
        var changed = genuine
        changed.blocks = 10...2000
        forgeries.append(changed)
        changed = genuine
        changed.rights = [.read, .write]
        forgeries.append(changed)
        changed = genuine
        changed.expiry += 3600
        forgeries.append(changed)
        changed = genuine
        changed.mac ^= 1
        forgeries.append(changed)
        for forgery in forgeries {
            #expect(throws: PocketError.self) { try signer.check(forgery, job: 9, rights: .read) }
        }
    }

    @Test func theSignedBytesAreTheTagThenEveryFieldBigEndian() {
        let capability = Capability(job: 0x0102, rights: [.read, .write], blocks: 3...0x0405, expiry: 0x0607)
        let fields: [UInt8] =
            [0, 0, 0, 0, 0, 0, 1, 2] + [3] + [0, 0, 0, 0, 0, 0, 0, 3] + [0, 0, 0, 0, 0, 0, 4, 5]
            + [0, 0, 0, 0, 0, 0, 6, 7]
        #expect(capability.signedBytes == Array("pocket-capability-v1".utf8) + fields)
    }

    @Test func theMacIsHMACSHA256OfTheSignedBytes() {
        // The keyed state is made once and copied per MAC; each MAC must still be the plain HMAC.
        for job in [1, 9, 1 << 40] as [JobID] {
            let capability = signer.sign(job: job, rights: .read, blocks: 10...20)
            let code = HMAC<SHA256>.authenticationCode(
                for: capability.signedBytes, using: SymmetricKey(data: Array(repeating: UInt8(7), count: 32)))
            let expected = code.withUnsafeBytes { $0.prefix(16).reduce(UInt128(0)) { $0 << 8 | UInt128($1) } }
            #expect(capability.mac == expected)
        }
    }

    @Test func signingFromManyThreadsAtOnceGivesCapabilitiesThatCheck() async throws {
        let signer = self.signer
        let capabilities = await withTaskGroup(of: [Capability].self) { group in
            for task in 0..<8 {
                group.addTask {
                    (0..<500).map {
                        signer.sign(job: JobID(task), rights: .read, blocks: BlockID($0)...BlockID($0 + 1))
                    }
                }
            }
            return await group.reduce(into: []) { $0 += $1 }
        }
        #expect(capabilities.count == 4_000)
        for capability in capabilities { try signer.check(capability, job: capability.job, rights: .read) }
    }

    @Test func anotherKeysSignatureIsRefused() {
        let other = CapabilitySigner(key: try! ClusterKey(bytes: Array(repeating: 8, count: 32)))
        let capability = other.sign(job: 9, rights: .read, blocks: 1...5)
        #expect(throws: PocketError(.unauthorized, "capability signature does not verify")) {
            try signer.check(capability, job: 9, rights: .read)
        }
    }

    @Test func anotherJobsOrRightsOrBlocksAreRefused() {
        let capability = signer.sign(job: 9, rights: .read, blocks: 10...20)
        #expect(throws: PocketError.self) { try signer.check(capability, job: 10, rights: .read) }
        #expect(throws: PocketError.self) { try signer.check(capability, job: 9, rights: .write) }
        #expect(throws: PocketError.self) { try signer.check([capability], covering: [9], job: 9, rights: .read) }
        #expect(throws: PocketError.self) { try signer.check([capability], covering: [21], job: 9, rights: .read) }
        #expect(throws: PocketError.self) { try signer.check([], covering: [10], job: 9, rights: .read) }
    }

    @Test func aCapabilityIsHonouredUntilItsExpiryAndRefusedAfter() throws {
        // On a chosen clock: signed at t = 1,000,000 for 120 s.
        let start: Int64 = 1_000_000
        let capability = signer.sign(job: 9, rights: .read, blocks: 1...5, lifetime: .seconds(120), now: start)
        #expect(capability.expiry == start + 120)
        try signer.check(capability, job: 9, rights: .read, now: start)
        try signer.check(capability, job: 9, rights: .read, now: start + 120)
        #expect(throws: PocketError(.unauthorized, "capability expired")) {
            try signer.check(capability, job: 9, rights: .read, now: start + 121)
        }
        #expect(throws: PocketError(.unauthorized, "capability expired")) {
            try signer.check([capability], covering: [1, 5], job: 9, rights: .read, now: start + 121)
        }
        #expect(capability.isUsable(margin: 60, now: start + 59))
        #expect(!capability.isUsable(margin: 60, now: start + 60), "a client renews it before it lapses")
    }

    @Test func anExpiredCapabilityIsRefused() {
        let expired = signer.sign(job: 9, rights: .read, blocks: 1...5, lifetime: .seconds(-1))
        #expect(throws: PocketError(.unauthorized, "capability expired")) {
            try signer.check(expired, job: 9, rights: .read)
        }
    }

    @Test func keyFilesAreCreatedOnceAndPrivate() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("pocket-key-\(UUID())")
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("cluster.key").path
        let first = try ClusterKey.loadOrCreate(path: path)
        let second = try ClusterKey.loadOrCreate(path: path)
        let capability = CapabilitySigner(key: first).sign(job: 1, rights: .read, blocks: 1...1)
        try CapabilitySigner(key: second).check(capability, job: 1, rights: .read)
        let mode = try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int
        #expect(mode == 0o600)
        try "not hex\n".write(toFile: path, atomically: true, encoding: .utf8)
        #expect(throws: PocketError.self) { try ClusterKey.load(path: path) }
        try "abcd\n".write(toFile: path, atomically: true, encoding: .utf8)
        #expect(throws: PocketError.self) { try ClusterKey.load(path: path) }
    }
}
