// swift-tools-version: 6.0
// libFuzzer targets for every decoder of the wire protocol. Built only by scripts/fuzz, with
// `-sanitize=fuzzer` (libFuzzer supplies `main`), so it lives apart from the main package;
// Sources/PocketProtocol is a link to the main package's, so the fuzzed code is the shipped code.
import PackageDescription

let package = Package(
    name: "PocketFuzz",
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2")
    ],
    targets: [
        .target(name: "PocketProtocol", dependencies: [.product(name: "NIOCore", package: "swift-nio")]),
        .executableTarget(
            name: "PocketFuzz",
            dependencies: ["PocketProtocol", .product(name: "NIOCore", package: "swift-nio")],
            swiftSettings: [.unsafeFlags(["-parse-as-library"])]
        ),
    ]
)
