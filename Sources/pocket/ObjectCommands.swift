import ArgumentParser
import Foundation
import NIOCore
import PocketClient
import PocketProtocol

extension Pocket {
    struct Put: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Store a file (or standard input) as an object.")
        @Argument(help: "Job name.") var job: String
        @Argument(help: "Object key.") var key: String
        @Argument(help: "File to read, or - for standard input.") var file = "-"
        @Flag(help: "Keep the object after the job deregisters.") var persist = false
        @OptionGroup var access: JobAccess

        func run() async throws {
            let (client, job) = try await access.open(self.job)
            let result = await capture { try await job.put(key, contentsOfFile: file, persist: persist) }
            await client.close()
            try result.get()
        }
    }

    struct Get: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Fetch an object into a file (or standard output).")
        @Argument(help: "Job name.") var job: String
        @Argument(help: "Object key.") var key: String
        @Argument(help: "File to write, or - for standard output.") var file = "-"
        @Flag(help: "Delete the object once it has been read.") var deleteAfterRead = false
        @OptionGroup var access: JobAccess

        func run() async throws {
            let (client, job) = try await access.open(self.job)
            let result = await capture { try await job.get(key, toFile: file, deleteAfterRead: deleteAfterRead) }
            await client.close()
            try result.get()
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "ls", abstract: "List a job's objects under a directory or with a name prefix.")
        @Argument(help: "Job name.") var job: String
        @Argument(help: "A directory (ending in /) or a key prefix.") var prefix = ""
        @Flag(name: .shortAndLong, help: "Show kind, size and time.") var long = false
        @OptionGroup var access: JobAccess

        func run() async throws {
            let (client, job) = try await access.open(self.job)
            let result = await capture {
                // "a/b/" lists directory a/b; "a/b" lists entries of a/ whose names start with "b".
                if prefix.isEmpty || prefix.hasSuffix("/") {
                    return (prefix, try await job.list(prefix.isEmpty ? "/" : prefix))
                }
                let slash = prefix.lastIndex(of: "/")
                let directory = slash.map { String(prefix[...$0]) } ?? ""
                let start = slash.map { String(prefix[prefix.index(after: $0)...]) } ?? prefix
                return (directory, try await job.list(directory.isEmpty ? "/" : directory, prefix: start))
            }
            await client.close()
            let (directory, entries) = try result.get()
            for entry in entries {
                let name = directory + entry.name + (entry.kind == .directory ? "/" : "")
                if long {
                    let kind = entry.kind == .directory ? "d" : entry.kind == .symlink ? "l" : "-"
                    let seconds = Double(entry.modified) / 1e9
                    let time = ISO8601DateFormatter().string(from: Date(timeIntervalSince1970: seconds))
                    print("\(kind) \(String(entry.size).leftPadded(12)) \(time) \(name)")
                } else {
                    print(name)
                }
            }
        }
    }

    struct Remove: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "rm", abstract: "Delete an object or directory.")
        @Argument(help: "Job name.") var job: String
        @Argument(help: "Object key or directory.") var key: String
        @Flag(name: .shortAndLong, help: "Delete a directory and everything in it.") var recursive = false
        @OptionGroup var access: JobAccess

        func run() async throws {
            let (client, job) = try await access.open(self.job)
            let result = await capture { try await job.delete(key, recursive: recursive) }
            await client.close()
            try result.get()
        }
    }
}

extension String {
    func leftPadded(_ width: Int) -> String {
        count >= width ? self : String(repeating: " ", count: width - count) + self
    }
}
