// swift-tools-version: 6.2
import PackageDescription

/// Every target of ours: warnings are errors (as in swift-nio's CI), so none accumulates.
let strict: [SwiftSetting] = [.treatAllWarnings(as: .error)]

let package = Package(
    name: "Pocket",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "pocket", targets: ["pocket"]),
        .library(name: "PocketClient", targets: ["PocketClient"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-async-algorithms.git", from: "1.1.4"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "3.12.3"),
    ],
    targets: [
        // libfuse3 (pkg-config fuse3); used by the FUSE front-end.
        .systemLibrary(
            name: "CFuse",
            path: "CFuse",
            pkgConfig: "fuse3",
            providers: [.apt(["libfuse3-dev"])]
        ),
        // Wire format: frames, opcodes, messages, errors, units. No I/O.
        .target(
            name: "PocketProtocol",
            dependencies: [.product(name: "NIOCore", package: "swift-nio")],
            swiftSettings: strict
        ),
        // Framed request/response transport over TCP, optionally TLS: servers and multiplexed client connections.
        .target(
            name: "PocketRPC",
            dependencies: [
                "PocketProtocol",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOTLS", package: "swift-nio"),
            ],
            swiftSettings: strict
        ),
        // The cluster key, and block capabilities signed and checked with it (HMAC-SHA256).
        .target(
            name: "PocketSecurity",
            dependencies: ["PocketProtocol", .product(name: "Crypto", package: "swift-crypto")],
            swiftSettings: strict
        ),
        .target(
            name: "PocketStorage",
            dependencies: [
                "PocketProtocol", "PocketRPC", "PocketSecurity", .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "PocketMetadata",
            dependencies: [
                "PocketProtocol", "PocketRPC", "PocketSecurity", .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "PocketController",
            dependencies: [
                "PocketProtocol", "PocketRPC", "PocketSecurity", .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "PocketClient",
            dependencies: [
                "PocketProtocol", "PocketRPC",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "AsyncAlgorithms", package: "swift-async-algorithms"),
            ],
            swiftSettings: strict
        ),
        // The FUSE front-end: /pocket/<job> over PocketClient, on libfuse3's low-level API.
        .target(
            name: "PocketFUSE",
            dependencies: [
                "CFuse", "PocketClient", "PocketProtocol", "PocketRPC",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),
        // Runs a cluster as child processes on this machine (`pocket up`, the local provisioner).
        .target(
            name: "PocketLocal",
            dependencies: [
                "PocketClient", "PocketController", "PocketSecurity", .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        // `pocket simulate`: the controller's policy and autoscaler against a simulated cluster.
        .target(name: "PocketSimulation", dependencies: ["PocketController", "PocketProtocol"], swiftSettings: strict),
        // Starts storage and metadata servers as pods through the Kubernetes API.
        .target(
            name: "PocketKubernetes",
            dependencies: [
                "PocketController", "PocketProtocol",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        // `pocket bench`: put/get load generation and latency statistics.
        .target(name: "PocketBench", dependencies: ["PocketClient"], swiftSettings: strict),
        .executableTarget(
            name: "pocket",
            dependencies: [
                "PocketProtocol", "PocketRPC", "PocketStorage", "PocketMetadata", "PocketController",
                "PocketClient", "PocketLocal", "PocketBench", "PocketFUSE", "PocketSimulation", "PocketKubernetes",
                "PocketSecurity",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),
        // Helpers shared by the test targets.
        .target(name: "PocketTestSupport", path: "Tests/PocketTestSupport", swiftSettings: strict),
        .testTarget(
            name: "PocketProtocolTests", dependencies: ["PocketProtocol", "PocketTestSupport"], swiftSettings: strict),
        .testTarget(
            name: "PocketRPCTests",
            dependencies: [
                "PocketRPC", "PocketProtocol", "PocketTestSupport", .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"), .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ], swiftSettings: strict),
        .testTarget(
            name: "PocketMetadataTests", dependencies: ["PocketMetadata", "PocketProtocol", "PocketSecurity"],
            swiftSettings: strict),
        .testTarget(
            name: "PocketSecurityTests",
            dependencies: ["PocketSecurity", "PocketProtocol", .product(name: "Crypto", package: "swift-crypto")],
            swiftSettings: strict),
        .testTarget(
            name: "PocketFUSETests",
            dependencies: [
                "PocketFUSE", "PocketProtocol", "PocketTestSupport", .product(name: "NIOCore", package: "swift-nio"),
            ],
            swiftSettings: strict),
        .testTarget(
            name: "PocketStorageTests", dependencies: ["PocketStorage", "PocketProtocol", "PocketSecurity"],
            swiftSettings: strict),
        .testTarget(
            name: "PocketControllerTests",
            dependencies: ["PocketController", "PocketProtocol", "PocketSimulation", "PocketTestSupport"],
            swiftSettings: strict),
        .testTarget(
            name: "PocketKubernetesTests",
            dependencies: [
                "PocketKubernetes", "PocketController", "PocketProtocol",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
            ],
            exclude: ["Fixtures"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "PocketIntegrationTests",
            dependencies: [
                "PocketClient", "PocketProtocol", "PocketRPC", "PocketLocal", "PocketBench", "PocketTestSupport",
                "PocketSecurity",
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            swiftSettings: strict
        ),
    ]
)
