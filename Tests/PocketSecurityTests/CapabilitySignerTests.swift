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
