import Foundation

/// Throwaway TLS material for tests, made with the `openssl` CLI (scripts/install-deps installs it):
/// CAs, and server certificates they sign. Test-only — keys are unencrypted, valid for two days.
public struct TestCertificates: Sendable {
    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    /// A CA: its certificate (what a client trusts) and its key (to sign with).
    public struct Authority: Sendable {
        public var certificate: String
        public var key: String
    }

    /// A server's certificate and key.
    public struct Identity: Sendable {
        public var certificate: String
        public var key: String
    }

    public let directory: URL

    public init(directory: URL) {
        self.directory = directory
    }

    /// Runs `body` with certificates made in a fresh temporary directory, removed afterwards.
    public static func withTemporaryDirectory<T>(_ body: (TestCertificates) async throws -> T) async throws -> T {
        let directory = URL(fileURLWithPath: NSTemporaryDirectory())
            .appendingPathComponent("pocket-tls-\(getpid())-\(UInt64.random(in: 0...UInt64.max))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        return try await body(TestCertificates(directory: directory))
    }

    /// A new self-signed CA.
    public func authority(_ name: String) throws -> Authority {
        let authority = Authority(certificate: path("\(name).pem"), key: path("\(name).key"))
        try openssl(
            "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", authority.key, "-out", authority.certificate, "-days", "2", "-subj", "/CN=Pocket test \(name)",
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")
        return authority
    }

    /// A server certificate signed by `authority`, for `subjectAltName` (`IP:127.0.0.1`, `DNS:host`…),
    /// valid from now for `days` (negative: it expired that many days ago).
    public func server(
        _ name: String, signedBy authority: Authority, subjectAltName: String = "IP:127.0.0.1", days: Int = 2
    ) throws -> Identity {
        let identity = Identity(certificate: path("\(name).pem"), key: path("\(name).key"))
        let request = path("\(name).csr")
        let extensions = path("\(name).ext")
        try openssl(
            "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", identity.key, "-out", request, "-subj", "/CN=Pocket test \(name)")
        try """
        subjectAltName=\(subjectAltName)
        basicConstraints=critical,CA:FALSE
        keyUsage=critical,digitalSignature
        extendedKeyUsage=serverAuth

        """.write(toFile: extensions, atomically: true, encoding: .utf8)
        try openssl(
            "x509", "-req", "-in", request, "-CA", authority.certificate, "-CAkey", authority.key,
            "-set_serial", "\(UInt32.random(in: 1...UInt32.max))", "-days", "\(days)", "-extfile", extensions,
            "-out", identity.certificate)
        return identity
    }

    private func path(_ name: String) -> String {
        directory.appendingPathComponent(name).path
    }

    private func openssl(_ arguments: String...) throws {
        let candidates = ["/usr/bin/openssl", "/usr/local/bin/openssl", "/bin/openssl"]
        guard let executable = candidates.first(where: FileManager.default.isExecutableFile(atPath:)) else {
            throw Failure(description: "the openssl command is not installed (scripts/install-deps installs it)")
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let errors = Pipe()
        process.standardOutput = FileHandle.nullDevice
        process.standardError = errors
        try process.run()
        let output = errors.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw Failure(
                description:
                    "openssl \(arguments.joined(separator: " ")) failed: \(String(decoding: output, as: UTF8.self))")
        }
    }
}
