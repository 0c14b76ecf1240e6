import Testing

@testable import PocketProtocol

@Suite struct UnitsTests {
    @Test(
        arguments: [
            ("0", 0), ("1", 1), ("64KiB", 65536), ("64 KiB", 65536), ("1.5GB", 1_500_000_000), ("10GiB", 10 << 30),
            ("2M", 2 << 20), ("3MB", 3_000_000), ("1TiB", 1 << 40), ("512B", 512), ("1kib", 1024),
        ] as [(String, UInt64)])
    func sizesParse(_ text: String, _ bytes: UInt64) throws {
        #expect(try Units.parseSize(text) == bytes)
    }

    @Test(arguments: ["", "abc", "-1", "1XB", "1Gb", "1e3", "KiB", "1.2.3"])
    func badSizesAreRejected(_ text: String) {
        #expect(throws: Units.ParseError.self) { try Units.parseSize(text) }
    }

    @Test(
        arguments: [
            ("600Mb/s", 75_000_000), ("8Gb/s", 1_000_000_000), ("1GB/s", 1_000_000_000), ("2GiB", 2 << 30),
            ("100MB", 100_000_000), ("8Gbps", 1_000_000_000), ("1000", 1000),
        ] as [(String, UInt64)])
    func ratesParse(_ text: String, _ bytesPerSecond: UInt64) throws {
        #expect(try Units.parseRate(text) == bytesPerSecond)
    }

    @Test func sizesFormat() {
        #expect(Units.formatSize(0) == "0 B")
        #expect(Units.formatSize(1023) == "1023 B")
        #expect(Units.formatSize(65536) == "64 KiB")
        #expect(Units.formatSize(1536) == "1.5 KiB")
        #expect(Units.formatSize(10 << 30) == "10 GiB")
        #expect(Units.formatRate(1 << 20) == "1 MiB/s")
    }

    @Test func hugeValuesAreRejectedNotWrapped() {
        #expect(throws: Units.ParseError.self) { try Units.parseSize("99999999PiB") }
    }
}
