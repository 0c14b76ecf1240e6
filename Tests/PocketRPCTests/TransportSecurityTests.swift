import Foundation
import PocketRPC
import PocketTestSupport
import Testing

/// Loading TLS files: good ones give both sides; each kind of bad one is refused with its own code,
/// naming the file and never echoing what is in it.
@Suite struct TransportSecurityTests {
    @Test func aCertificateKeyAndCALoadBothSides() async throws {
        try await TestCertificates.withTemporaryDirectory { certificates in
            let authority = try certificates.authority("ca")
            let server = try certificates.server("server", signedBy: authority)
            let security = try TransportSecurity(
                .init(certificate: server.certificate, key: server.key, trustRoots: authority.certificate))
            #expect(security.server != nil)
            #expect(security.client != nil)
            let clientOnly = try TransportSecurity(.init(trustRoots: authority.certificate))
            #expect(clientOnly.server == nil)
            #expect(clientOnly.client != nil)
            let none = try TransportSecurity(.init())
            #expect(none.server == nil && none.client == nil)
        }
    }

    /// A bad input, and the code and words its error must have.
    struct BadInput: Sendable, CustomTestStringConvertible {
        var testDescription: String
        var code: TransportSecurityError.Code
        var message: String
        /// From the certificates' directory, a good CA and a good server identity: the files to load,
        /// and the file the error must name.
        var make: @Sendable (TestCertificates, TestCertificates.Authority, TestCertificates.Identity) throws -> Outcome
    }

    typealias Outcome = (files: TransportSecurity.Files, named: String?)

    static let badInputs: [BadInput] = [
        BadInput(testDescription: "missing certificate", code: .unreadableFile, message: "No such file or directory") {
            certificates, authority, server in
            let missing = certificates.directory.appendingPathComponent("missing.pem").path
            return (.init(certificate: missing, key: server.key, trustRoots: authority.certificate), missing)
        },
        BadInput(testDescription: "certificate is a directory", code: .unreadableFile, message: "cannot be read") {
            certificates, authority, server in
            let path = certificates.directory.path
            return (.init(certificate: path, key: server.key, trustRoots: authority.certificate), path)
        },
        BadInput(testDescription: "certificate is not PEM", code: .invalidCertificate, message: "no PEM") {
            certificates, authority, server in
            let path = try TransportSecurityTests.write("not a certificate\n", to: "garbage.pem", in: certificates)
            return (.init(certificate: path, key: server.key, trustRoots: authority.certificate), path)
        },
        BadInput(testDescription: "key file holds a certificate", code: .invalidKey, message: "no unencrypted PEM") {
            _, authority, server in
            (
                .init(certificate: server.certificate, key: server.certificate, trustRoots: authority.certificate),
                server.certificate
            )
        },
        BadInput(testDescription: "key of another certificate", code: .keyMismatch, message: "does not match") {
            certificates, authority, server in
            let other = try certificates.server("other", signedBy: authority)
            return (
                .init(certificate: server.certificate, key: other.key, trustRoots: authority.certificate), other.key
            )
        },
        BadInput(testDescription: "expired certificate", code: .expiredCertificate, message: "expired on") {
            certificates, authority, _ in
            let old = try certificates.server("old", signedBy: authority, days: -1)
            return (
                .init(certificate: old.certificate, key: old.key, trustRoots: authority.certificate), old.certificate
            )
        },
        BadInput(testDescription: "certificate without key", code: .incomplete, message: "needs its private key") {
            _, authority, server in
            (.init(certificate: server.certificate, trustRoots: authority.certificate), nil)
        },
        BadInput(testDescription: "key without certificate", code: .incomplete, message: "needs its certificate") {
            _, authority, server in
            (.init(key: server.key, trustRoots: authority.certificate), nil)
        },
        BadInput(testDescription: "missing CA", code: .unreadableFile, message: "No such file or directory") {
            certificates, _, _ in
            let missing = certificates.directory.appendingPathComponent("no-ca.pem").path
            return (.init(trustRoots: missing), missing)
        },
        BadInput(testDescription: "CA file is a key", code: .invalidCertificate, message: "no PEM CA certificate") {
            _, _, server in
            (.init(trustRoots: server.key), server.key)
        },
    ]

    @Test(arguments: badInputs) func badFilesAreRefusedClearly(_ input: BadInput) async throws {
        try await TestCertificates.withTemporaryDirectory { certificates in
            let authority = try certificates.authority("ca")
            let server = try certificates.server("server", signedBy: authority)
            let (files, named) = try input.make(certificates, authority, server)
            let error = try #require(throws: TransportSecurityError.self) { try TransportSecurity(files) }
            #expect(error.code == input.code)
            #expect(error.path == named)
            #expect(error.description.contains(input.message), "\(error)")
            if let named { #expect(error.description.contains(named)) }
        }
    }

    @Test func aBadKeyFileIsNotEchoedInTheError() async throws {
        try await TestCertificates.withTemporaryDirectory { certificates in
            let authority = try certificates.authority("ca")
            let server = try certificates.server("server", signedBy: authority)
            let secret = "c2VjcmV0LWtleS1tYXRlcmlhbC10aGF0LW11c3Qtbm90LWxlYWs="
            let key = try Self.write(
                "-----BEGIN PRIVATE KEY-----\n\(secret)\n-----END PRIVATE KEY-----\n", to: "bad.key", in: certificates)
            let error = try #require(throws: TransportSecurityError.self) {
                try TransportSecurity(
                    .init(certificate: server.certificate, key: key, trustRoots: authority.certificate))
            }
            #expect(error.code == .invalidKey)
            #expect(!"\(error)".contains(secret))
            #expect(!"\(String(describing: error.cause))".contains(secret))
        }
    }

    static func write(_ text: String, to name: String, in certificates: TestCertificates) throws -> String {
        let path = certificates.directory.appendingPathComponent(name).path
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }
}
