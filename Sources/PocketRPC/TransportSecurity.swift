import Foundation
import NIOSSL
import Synchronization

/// TLS for Pocket's connections, loaded once from PEM files: a server side (certificate chain and
/// private key) and a client side (the roots it trusts, with full certificate and hostname/IP
/// verification). `.plain` has neither and is the default.
///
/// How it reaches each connection: `RPCServer.bind`, `RPCConnection.connect` and `ConnectionPool`
/// take it as a parameter whose default is `TransportSecurity.process`, which an executable sets
/// once at startup (`bootstrap`, like `LoggingSystem.bootstrap`). A daemon's every connection —
/// heartbeats, frees, calls to metadata servers — and a CLI command's client then speak TLS without
/// the setting being threaded through each service, session and client initialiser. The parameter
/// stays for code that reaches clusters of both kinds from one process — tests, and `LocalCluster`
/// waiting for its children — which passes a value explicitly (a client's through
/// `PocketClient.Configuration.security`).
public struct TransportSecurity: Sendable {
    /// PEM files: a certificate chain and its key to serve TLS, roots to trust when connecting.
    public struct Files: Hashable, Sendable {
        public var certificate: String?
        public var key: String?
        public var trustRoots: String?

        public init(certificate: String? = nil, key: String? = nil, trustRoots: String? = nil) {
            self.certificate = certificate
            self.key = key
            self.trustRoots = trustRoots
        }
    }

    /// Set: accepted connections are TLS only. Nil: plain TCP.
    public let server: NIOSSLContext?
    /// Set: outgoing connections are TLS, verified against its roots. Nil: plain TCP.
    public let client: NIOSSLContext?

    public static let plain = TransportSecurity(server: nil, client: nil)

    public init(server: NIOSSLContext?, client: NIOSSLContext?) {
        self.server = server
        self.client = client
    }

    /// Loads the server side from `certificate` and `key` (both or neither) and the client side from
    /// `trustRoots`. Errors name the file and what is wrong with it, never its contents.
    public init(_ files: Files) throws(TransportSecurityError) {
        var server: NIOSSLContext?
        switch (files.certificate, files.key) {
        case (let certificatePath?, let keyPath?):
            let chain = try Self.certificates(at: certificatePath, role: "certificate")
            let key = try Self.privateKey(at: keyPath)
            if let leaf = chain.first, Double(leaf.notValidAfter) < Date().timeIntervalSince1970 {
                let expiry = Date(timeIntervalSince1970: Double(leaf.notValidAfter))
                throw TransportSecurityError(.expiredCertificate, path: certificatePath, "expired on \(expiry)")
            }
            var configuration = TLSConfiguration.makeServerConfiguration(
                certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key))
            configuration.minimumTLSVersion = .tlsv12
            do {
                server = try NIOSSLContext(configuration: configuration)
            } catch {
                // Both parsed, so what is left to fail is the pair: BoringSSL checks the key
                // against the leaf certificate.
                throw TransportSecurityError(
                    .keyMismatch, path: keyPath, "does not match the certificate in \(certificatePath)", cause: error)
            }
        case (nil, nil):
            server = nil
        case (_?, nil):
            throw TransportSecurityError(.incomplete, path: nil, "a TLS certificate needs its private key")
        case (nil, _?):
            throw TransportSecurityError(.incomplete, path: nil, "a TLS private key needs its certificate")
        }

        var client: NIOSSLContext?
        if let rootsPath = files.trustRoots {
            let roots = try Self.certificates(at: rootsPath, role: "CA")
            var configuration = TLSConfiguration.makeClientConfiguration()
            configuration.trustRoots = .certificates(roots)
            configuration.certificateVerification = .fullVerification
            configuration.minimumTLSVersion = .tlsv12
            do {
                client = try NIOSSLContext(configuration: configuration)
            } catch {
                throw TransportSecurityError(.invalidCertificate, path: rootsPath, "cannot be trusted", cause: error)
            }
        }
        self.init(server: server, client: client)
    }

    private static func contents(of path: String) throws(TransportSecurityError) -> [UInt8] {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else {
            throw TransportSecurityError(
                .unreadableFile, path: path, "cannot be read: \(String(cString: strerror(errno)))")
        }
        defer { close(descriptor) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 16 << 10)
        while true {
            let count = chunk.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
            if count < 0, errno == EINTR { continue }
            guard count >= 0 else {
                throw TransportSecurityError(
                    .unreadableFile, path: path, "cannot be read: \(String(cString: strerror(errno)))")
            }
            if count == 0 { return bytes }
            bytes += chunk[..<count]
        }
    }

    private static func certificates(
        at path: String, role: String
    ) throws(TransportSecurityError)
        -> [NIOSSLCertificate]
    {
        let bytes = try contents(of: path)
        let certificates: [NIOSSLCertificate]
        do {
            certificates = try NIOSSLCertificate.fromPEMBytes(bytes)
        } catch {
            certificates = []
        }
        guard !certificates.isEmpty else {
            throw TransportSecurityError(
                .invalidCertificate, path: path, "holds no PEM \(role) certificate (-----BEGIN CERTIFICATE-----)")
        }
        return certificates
    }

    private static func privateKey(at path: String) throws(TransportSecurityError) -> NIOSSLPrivateKey {
        let bytes = try contents(of: path)
        do {
            return try NIOSSLPrivateKey(bytes: bytes, format: .pem)
        } catch {
            // The cause is a bare NIOSSLError case; nothing from the file is echoed.
            throw TransportSecurityError(
                .invalidKey, path: path, "holds no unencrypted PEM private key", cause: error)
        }
    }
}

extension TransportSecurity {
    private static let installed = Mutex<(security: TransportSecurity, set: Bool)>((.plain, false))

    /// The process's setting: what servers and connections use unless given another. Plain until
    /// `bootstrap`.
    public static var process: TransportSecurity { installed.withLock { $0.security } }

    /// Sets the process's TLS once, at startup, before any server or connection is made.
    public static func bootstrap(_ security: TransportSecurity) {
        installed.withLock { installed in
            precondition(!installed.set, "TransportSecurity.bootstrap may only be called once per process")
            installed = (security, true)
        }
    }
}

/// A TLS file that cannot be used: which file, what is wrong, and the underlying error.
public struct TransportSecurityError: Error, CustomStringConvertible {
    public enum Code: Sendable {
        case unreadableFile
        case invalidCertificate
        case invalidKey
        case keyMismatch
        case expiredCertificate
        /// A certificate without its key, or a key without its certificate.
        case incomplete
    }

    public var code: Code
    public var path: String?
    public var message: String
    public var cause: (any Error)?

    public init(_ code: Code, path: String?, _ message: String, cause: (any Error)? = nil) {
        self.code = code
        self.path = path
        self.message = message
        self.cause = cause
    }

    public var description: String {
        path.map { "TLS file \($0) \(message)" } ?? "TLS: \(message)"
    }
}
