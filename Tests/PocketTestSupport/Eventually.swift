/// The one way a test waits for something that must happen: it polls a condition until it holds.
/// `deadline` is only a hang guard — generous (60 s by default, many times what any behaviour here
/// needs on a loaded two-core machine), never a statement about speed; speed is measured by
/// scripts (`scripts/faults`, `scripts/bench`), not asserted by tests.
public struct WaitTimedOut: Error, CustomStringConvertible {
    public var description: String
}

/// Polls `probe` until it returns a value, and returns that value — first within a millisecond,
/// then less often, backing off to one poll per `interval` (cheap for what is nearly there, light on
/// a loaded machine for what takes seconds); throws
/// `WaitTimedOut` naming `description` (and the last probe error, if any) once `deadline` has
/// passed. A probe that throws counts as "not yet": a server still starting, a state not reached.
/// Where the call's context is itself optional, name `T` (`let x: Found = try await eventually…`):
/// otherwise the probe's "not yet" can be taken for a found `nil`.
@discardableResult
public func eventually<T>(
    _ description: @autoclosure () -> String, deadline: Duration = .seconds(60),
    every interval: Duration = .milliseconds(50), _ probe: () async throws -> T?
) async throws -> T {
    let clock = ContinuousClock()
    let end = clock.now + deadline
    var lastError: (any Error)?
    var pause = min(Duration.milliseconds(1), interval)
    while true {
        do {
            if let value = try await probe() { return value }
            lastError = nil
        } catch is CancellationError {
            throw CancellationError()
        } catch {
            lastError = error
        }
        guard clock.now < end else {
            let cause = lastError.map { "; last attempt: \($0)" } ?? ""
            throw WaitTimedOut(description: "waited \(deadline) for \(description())\(cause)")
        }
        try await Task.sleep(for: pause)
        pause = min(pause * 2, interval)
    }
}

/// Polls `condition` until it holds (see `eventually(_:deadline:every:_:)`).
public func eventually(
    _ description: @autoclosure () -> String, deadline: Duration = .seconds(60),
    every interval: Duration = .milliseconds(50), _ condition: () async throws -> Bool
) async throws {
    try await eventually(description(), deadline: deadline, every: interval) { try await condition() ? () : nil }
}

/// At most `limit` holders at once; others wait their turn in order. Integration suites take a slot
/// for each cluster of processes they start, so the machine is loaded deliberately rather than by
/// however many tests the runner happens to start together.
public actor Slots {
    private let limit: Int
    private var held = 0
    private var waiting: [CheckedContinuation<Void, Never>] = []

    public init(_ limit: Int) { self.limit = max(1, limit) }

    /// Waits for a slot; every `acquire` is paired with one `release`.
    public func acquire() async {
        guard held >= limit else {
            held += 1
            return
        }
        await withCheckedContinuation { waiting.append($0) }
    }

    public func release() {
        if waiting.isEmpty {
            held -= 1
        } else {
            waiting.removeFirst().resume()  // the slot passes straight to the next in line
        }
    }
}
