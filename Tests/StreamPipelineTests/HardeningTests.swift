import Crypto
import Foundation
import Kafka
import Logging
import Synchronization
import Testing
@testable import StreamPipeline

/// Issue #12, without a broker: arithmetic on record values, offsets going backwards, back-pressure races,
/// and the publisher's handling of records that cannot be published as they are.
@Suite struct PoisonArithmeticTests {
    @Test func durationsFromRecordTimestampsNeverTrap() {
        let now: Int64 = 1_760_000_000_000
        // Far future, far past, negative and absent timestamps: no end-to-end latency, no trap.
        for timestamp: Int64? in [Int64.max, Int64.max - 1, now + 1, Int64.min, -1, -5, 0, nil] {
            #expect(Duration.sinceRecordTimestamp(timestamp, nowMilliseconds: now) == nil, "\(String(describing: timestamp))")
        }
        #expect(Duration.sinceRecordTimestamp(now - 1500, nowMilliseconds: now) == .milliseconds(1500))
        #expect(Duration.sinceRecordTimestamp(1, nowMilliseconds: now) == .milliseconds(now - 1))
        // The conversion the metrics backend gets saturates instead of trapping.
        #expect(Duration.milliseconds(Int64.max).nanoseconds == .max)
        #expect(Duration.milliseconds(Int64.min).nanoseconds == .min)
        #expect(Duration.seconds(Int64.max / 1_000_000_000 + 1).nanoseconds == .max)
        #expect(Duration.milliseconds(1500).nanoseconds == 1_500_000_000)
        #expect(Duration.milliseconds(-1500).nanoseconds == -1_500_000_000)
        let metrics = PipelineMetrics()
        metrics.produced(endToEnd: .milliseconds(Int64.max))
        metrics.produced(endToEnd: .milliseconds(Int64.min))
        #expect(metrics.snapshot.produced == 2)
    }

    @Test func recordSizesSaturate() {
        let record = ProducerRecord(topic: "t", key: [1, 2], value: [3], headers: [KafkaHeader(name: "h", value: [4, 5])])
        #expect(record.payloadSize == 6)
    }
}

@Suite struct OffsetRewindTests {
    @Test func offsetsGoingBackwardsStartANewGenerationInsteadOfTrapping() {
        var tracker = OffsetTracker()
        var generations: [UInt64] = []
        for offset in Int64(100)...104 { generations.append(tracker.register(offset)) }
        tracker.acknowledge(100, generation: generations[0])
        tracker.acknowledge(101, generation: generations[1])
        #expect(tracker.nextCommit == 102)
        tracker.markCommitted(102, generation: generations[0])

        // Log truncated / auto.offset.reset moved the position back to 50.
        let rewound = tracker.register(50)
        #expect(rewound != generations[0])
        #expect(tracker.inFlight == 1, "the old in-flight events are forgotten")
        #expect(tracker.nextCommit == nil)
        // A late acknowledgement of the old 103 must not touch the new numbering.
        let staleOld = tracker.acknowledge(103, generation: generations[3])
        #expect(!staleOld)
        for offset in Int64(51)...53 { _ = tracker.register(offset) }
        let staleNew = tracker.acknowledge(51, generation: generations[0])
        #expect(!staleNew, "old generation")
        let fresh = tracker.acknowledge(50, generation: rewound)
        #expect(fresh)
        #expect(tracker.nextCommit == 51, "commits follow the new numbering, below the old commit")
        // The same offset again (a re-delivery) is also a restart, never a trap.
        _ = tracker.register(53)
        #expect(tracker.inFlight == 1)
        // Offset Int64.max (a broken broker) commits without overflowing.
        let last = tracker.register(.max)
        _ = tracker.acknowledge(53)
        let maxAcknowledged = tracker.acknowledge(.max, generation: last)
        #expect(maxAcknowledged)
        #expect(tracker.nextCommit == .max)
        print("offset rewind: 2 restarts, 0 traps, stale acknowledgements ignored: 2")
    }

    @Test func acknowledgingIsNotALinearScan() {
        // 50 000 events in flight acknowledged newest first: a linear search would take ~1.25·10⁹ steps.
        var tracker = OffsetTracker()
        let count: Int64 = 50_000
        for offset in 0..<count { tracker.register(offset * 2) }  // gaps, as with compaction or markers
        let clock = ContinuousClock()
        let elapsed = clock.measure {
            for offset in (0..<count).reversed() { tracker.acknowledge(offset * 2) }
        }
        #expect(tracker.inFlight == 0)
        #expect(tracker.nextCommit == (count - 1) * 2 + 1)
        #expect(elapsed < .seconds(5), "took \(elapsed)")
        print("acknowledged \(count) offsets in reverse order in \(elapsed)")
    }

    @Test func bookRegistrationRewindsWithoutTrapping() {
        let book = OffsetBook()
        let partition = TopicPartition(topic: "t", partition: 0)
        let old = book.register(partition, offset: 10)
        let new = book.register(partition, offset: 3)
        book.acknowledge(partition, offset: 10, generation: old)
        #expect(book.pendingCommits().isEmpty)
        book.acknowledge(partition, offset: 3, generation: new)
        #expect(book.pendingCommits() == [partition: 4])
    }
}

@Suite struct BackPressureTests {
    /// Records the consumer calls the router makes.
    final class Calls: Sendable {
        let paused = Mutex<Set<TopicPartition>>([])
        func apply(_ pause: [TopicPartition], _ resume: [TopicPartition]) {
            paused.withLock { $0.formUnion(pause); $0.subtract(resume) }
        }
    }

    @Test func aShardThatDrainsBeforeThePauseIsAppliedIsResumedAnyway() {
        // --max-batch ≥ --queue-capacity / 2: the shard empties its whole queue in one batch, and reports that
        // before the consumer loop pauses its partitions.
        let calls = Calls()
        let router = PartitionRouter(shardCount: 1) { calls.apply($0, $1) }
        let partition = TopicPartition(topic: "t", partition: 0)
        router.assign([partition])
        let depth = Mutex(4)
        let capacity = 4
        // The consumer's push saw the queue full; before it acts, the shard takes everything and reports.
        depth.withLock { $0 = 0 }
        router.refresh(shard: 0, depth: { depth.withLock { $0 } }, capacity: capacity)
        // Now the consumer loop acts on the stale "full".
        router.refresh(shard: 0, depth: { depth.withLock { $0 } }, capacity: capacity)
        #expect(calls.paused.withLock { $0 }.isEmpty, "an empty shard's partitions must not stay paused")

        // The normal path still pauses and resumes with hysteresis.
        depth.withLock { $0 = 4 }
        router.refresh(shard: 0, depth: { depth.withLock { $0 } }, capacity: capacity)
        #expect(calls.paused.withLock { $0 } == [partition])
        depth.withLock { $0 = 3 }
        router.refresh(shard: 0, depth: { depth.withLock { $0 } }, capacity: capacity)
        #expect(calls.paused.withLock { $0 } == [partition], "resumes only at half")
        depth.withLock { $0 = 2 }
        router.refresh(shard: 0, depth: { depth.withLock { $0 } }, capacity: capacity)
        #expect(calls.paused.withLock { $0 }.isEmpty)
    }

    @Test func theByteBudgetPausesEverythingAndResumesBelowHalf() {
        let calls = Calls()
        let router = PartitionRouter(shardCount: 2) { calls.apply($0, $1) }
        let partitions = (0..<4).map { TopicPartition(topic: "t", partition: Int32($0)) }
        router.assign(partitions)
        let budget = ByteBudget(limit: 1000)
        #expect(!budget.add(600))
        #expect(budget.add(600), "over the limit: a transition")
        router.setOverBudget(true)
        #expect(calls.paused.withLock { $0 } == Set(partitions))
        #expect(!budget.release(600), "700 is still above half")
        #expect(budget.release(200))
        router.setOverBudget(false)
        #expect(calls.paused.withLock { $0 }.isEmpty)
        #expect(budget.peak == 1200)
    }
}

/// A scripted producer: each send is answered by the first rule that matches.
final class FakeProducer: Sendable {
    typealias Rule = @Sendable (ProducerRecord, Int) -> KafkaError?
    private let state = Mutex<(sent: [ProducerRecord], delivered: [ProducerRecord], attempts: Int)>(([], [], 0))
    private let rule: Rule
    private let maxBytes: Int

    /// `rule(record, attempt)` returns the error to report for that attempt, or nil to deliver it.
    init(maxBytes: Int = .max, rule: @escaping Rule = { _, _ in nil }) {
        self.rule = rule
        self.maxBytes = maxBytes
    }

    var delivered: [ProducerRecord] { state.withLock { $0.delivered } }
    var attempts: Int { state.withLock { $0.attempts } }

    func send(_ record: ProducerRecord, _ onDelivery: @escaping KafkaProducer.DeliveryHandler) async throws {
        let attempt = state.withLock { state in
            state.attempts += 1
            state.sent.append(record)
            return state.attempts
        }
        if record.payloadSize > maxBytes {
            // As librdkafka does locally for a record over message.max.bytes.
            throw KafkaError(code: 10, name: "MSG_SIZE_TOO_LARGE", message: "Broker: Message size too large",
                             operation: "sending to topic \(record.topic)")
        }
        if let error = rule(record, attempt) {
            onDelivery(.failure(error))
        } else {
            state.withLock { $0.delivered.append(record) }
            onDelivery(.success(DeliveryReport(topic: record.topic, partition: 0, offset: Int64(attempt),
                                               timestampMilliseconds: nil)))
        }
    }
}

@Suite struct OutputPublisherTests {
    static let limit = 1_000_000 - 2048

    static func publisher(_ producer: FakeProducer, book: OffsetBook = OffsetBook(),
                          abandoned: @escaping @Sendable () -> Bool = { false }) -> OutputPublisher {
        var logger = Logger(label: "publisher-tests")
        logger.logLevel = .error
        return OutputPublisher(
            settings: .init(outputTopic: "out", deadLetterTopic: "dlq", shadowTopic: "shadow",
                            versionHeader: "minirbt-model-version", maxRecordBytes: limit,
                            retryBackoff: .milliseconds(1), maxRetryBackoff: .milliseconds(4)),
            send: { try await producer.send($0, $1) }, book: book, metrics: PipelineMetrics(), logger: logger,
            abandoned: abandoned)
    }

    static func record(_ offset: Int64, value: [UInt8] = Array(#"{"id":"a","text":"好"}"#.utf8),
                       key: [UInt8]? = Array("k".utf8), headers: [KafkaHeader] = []) -> ConsumerRecord {
        ConsumerRecord(topic: "in", partition: 0, offset: offset, timestampMilliseconds: Int64.max, key: key,
                       value: value, headers: headers)
    }

    static func result(_ record: ConsumerRecord, id: String = "a", score: Float = 0.9) -> ShardOutput {
        let source = SourceCoordinates(topic: record.topic, partition: record.partition, offset: record.offset,
                                       timestamp: record.timestampMilliseconds)
        return ShardOutput(record: record,
                           outcome: .result(EnrichedResult(id: id, source: source,
                                                           model: ModelIdentity(name: "m", version: "v2"),
                                                           label: "positive", score: score,
                                                           scores: ["positive": score], truncated: false)),
                           shadow: nil)
    }

    static func deadLetter(_ record: ConsumerRecord, code: DeadLetterCode = .malformedJSON) -> ShardOutput {
        ShardOutput(record: record,
                    outcome: .deadLetter(DeadLetter(code: code, message: "expected a JSON object",
                                                    source: SourceCoordinates(topic: record.topic, partition: record.partition,
                                                                              offset: record.offset, timestamp: nil),
                                                    originalValue: record.value ?? [])),
                    shadow: nil)
    }

    static func letter(_ record: ProducerRecord) throws -> DeadLetter {
        try JSONDecoder().decode(DeadLetter.self, from: Data(record.value ?? []))
    }

    static func count(_ producer: FakeProducer, sent: Int) {
        let delivered = producer.delivered
        let offsets = delivered.compactMap { record -> Int64? in
            if record.topic == "out" {
                return (try? JSONDecoder().decode(EnrichedResult.self, from: Data(record.value ?? [])))?.source?.offset
            }
            return (try? letter(record))?.source.offset
        }
        print("sent \(sent), delivered \(delivered.count), lost \(sent - Set(offsets).count), "
              + "duplicates \(offsets.count - Set(offsets).count), dead letters \(delivered.filter { $0.topic == "dlq" }.count), "
              + "attempts \(producer.attempts)")
    }

    @Test func recordsThatCannotBePublishedAsTheyAreBecomeDeadLettersThatFit() async throws {
        let producer = FakeProducer(maxBytes: Self.limit + 2048)
        let book = OffsetBook()
        let partition = TopicPartition(topic: "in", partition: 0)
        // A ~450 KB malformed event of control characters: as a dead letter, value (6 bytes per character)
        // plus value_base64 is about 3.5 MB.
        let controls = [UInt8](repeating: 0x01, count: 450_000)
        let hugeID = String(repeating: "x", count: 1_100_000)
        let records = [Self.record(0), Self.record(1, value: controls), Self.record(2), Self.record(3),
                       Self.record(4, headers: [KafkaHeader(name: "minirbt-error", value: "forged"),
                                                KafkaHeader(name: "trace", value: "t-1")])]
        for record in records { _ = book.register(partition, offset: record.offset) }
        let outputs = [Self.result(records[0]), Self.deadLetter(records[1]),
                       Self.result(records[2], id: hugeID), Self.result(records[3], score: .nan), Self.result(records[4])]
        try await Self.publisher(producer, book: book).publish(outputs)

        let delivered = producer.delivered
        Self.count(producer, sent: records.count)
        #expect(delivered.count == records.count, "one record per event")
        #expect(delivered.allSatisfy { $0.payloadSize <= Self.limit })
        #expect(book.pendingCommits() == [partition: 5], "every event settled: no commit gap")

        let letters = try delivered.filter { $0.topic == "dlq" }.map(Self.letter)
        let byOffset = Dictionary(uniqueKeysWithValues: letters.map { ($0.source.offset, $0) })
        let truncated = try #require(byOffset[1])
        #expect(truncated.error.code == .malformedJSON)
        #expect(truncated.value == nil, "the 6-bytes-per-character text form is left out")
        #expect(truncated.valueSize == controls.count)
        #expect(truncated.valueSha256 == SHA256.hash(data: controls).map { String(format: "%02x", $0) }.joined())
        let kept = try #require(Data(base64Encoded: truncated.valueBase64))
        #expect(kept == Data(controls), "the bytes alone fit: value_base64 keeps all of them")
        #expect(truncated.valueTruncated == false)
        #expect(truncated.error.message.contains("fit one record"))
        #expect(byOffset[2]?.error.code == .resultTooLarge)
        #expect(byOffset[2]?.valueTruncated == nil, "the event itself is small: kept whole")
        #expect(byOffset[3]?.error.code == .unencodableResult)

        let result4 = try #require(delivered.first { $0.topic == "out" && $0.headers.contains { $0.name == "trace" } })
        #expect(!result4.headers.contains { $0.name == "minirbt-error" }, "a forged error header does not pass into a result")
        #expect(result4.headers.contains { $0.name == "minirbt-model-version" })
    }

    @Test func transientFailuresAreRetriedWithoutLimitAndNeverDeadLettered() async throws {
        // _MSG_TIMED_OUT for the first 7 attempts of offset 1, then transport errors for offset 2's first 3.
        let producer = FakeProducer { record, _ in
            let offset = (try? JSONDecoder().decode(EnrichedResult.self, from: Data(record.value ?? [])))?.source?.offset
            return FailureScript.shared.next(for: offset)
        }
        let book = OffsetBook()
        let partition = TopicPartition(topic: "in", partition: 0)
        let records = (0..<4).map { Self.record(Int64($0)) }
        for record in records { _ = book.register(partition, offset: record.offset) }
        let publisher = Self.publisher(producer, book: book)
        try await publisher.publish(records.map { Self.result($0) })
        Self.count(producer, sent: records.count)
        #expect(producer.delivered.count == 4)
        #expect(producer.delivered.allSatisfy { $0.topic == "out" }, "transient errors never become dead letters")
        #expect(producer.attempts == 4 + 7 + 3)
        #expect(book.pendingCommits() == [partition: 4], "no commit gap after the failed deliveries")
        #expect(publisher.retrying.withLock { $0 } == nil, "ready again once delivered")
    }

    @Test func aMissingTopicStopsPublishingWithTheReason() async throws {
        let producer = FakeProducer { record, _ in
            record.topic == "out" ? KafkaError(code: 3, name: "UNKNOWN_TOPIC_OR_PART", message: "Broker: Unknown topic or partition",
                                               operation: "delivering to out[0]") : nil
        }
        let book = OffsetBook()
        let partition = TopicPartition(topic: "in", partition: 0)
        _ = book.register(partition, offset: 0)
        _ = book.register(partition, offset: 1)
        await #expect {
            try await Self.publisher(producer, book: book).publish([Self.deadLetter(Self.record(0)), Self.result(Self.record(1))])
        } throws: { error in
            "\(error)".contains("out") && "\(error)".contains("UNKNOWN_TOPIC_OR_PART")
        }
        Self.count(producer, sent: 2)
        #expect(book.pendingCommits() == [partition: 1], "what was published is committable, nothing more")
    }

    @Test func aDeadLetterTheBrokerRefusesAsTooLargeIsShrunk() async throws {
        // The broker's max.message.bytes is lower than the producer's: refused at delivery, not locally.
        let producer = FakeProducer { record, _ in
            record.payloadSize > 100_000 ? KafkaError(code: 10, name: "MSG_SIZE_TOO_LARGE", message: "Broker: Message size too large",
                                                      operation: "delivering to dlq[0]") : nil
        }
        let value = [UInt8](repeating: 0xff, count: 600_000)  // invalid UTF-8
        // A dead letter of 800 KB, and a result of 150 KB (a long id) that the broker refuses too.
        try await Self.publisher(producer).publish([Self.deadLetter(Self.record(0, value: value), code: .invalidUTF8),
                                                    Self.result(Self.record(1, value: value),
                                                                id: String(repeating: "x", count: 150_000))])
        Self.count(producer, sent: 2)
        #expect(producer.delivered.count == 2)
        #expect(producer.delivered.allSatisfy { $0.topic == "dlq" && $0.payloadSize <= 100_000 })
        let letters = try producer.delivered.map(Self.letter)
        #expect(letters.map(\.error.code.rawValue).sorted() == ["invalid_utf8", "publish_failed"])
        #expect(letters.allSatisfy { $0.valueSize == 600_000 && $0.valueTruncated == true })
    }
}

/// Scripted transient failures by source offset, for the retry test.
final class FailureScript: Sendable {
    static let shared = FailureScript()
    private let remaining = Mutex<[Int64: (count: Int, error: KafkaError)]>([
        1: (7, KafkaError(code: -192, name: "_MSG_TIMED_OUT", message: "Local: Message timed out", operation: "delivering")),
        2: (3, KafkaError(code: -195, name: "_TRANSPORT", message: "Local: Broker transport failure", operation: "delivering")),
    ])

    func next(for offset: Int64?) -> KafkaError? {
        guard let offset else { return nil }
        return remaining.withLock { remaining in
            guard let entry = remaining[offset], entry.count > 0 else { return nil }
            remaining[offset] = (entry.count - 1, entry.error)
            return entry.error
        }
    }
}
