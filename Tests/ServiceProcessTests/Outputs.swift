import Foundation
import Kafka
import KafkaTestSupport
import StreamPipeline

/// The service's outputs (results and dead letters), decoded and indexed by event.
struct Outputs: Sendable {
    struct Output: Sendable {
        let record: ConsumerRecord
        let result: EnrichedResult?
        let deadLetter: DeadLetter?
        /// The event id: the result's `id`, or the dead-lettered record's key.
        let eventID: String
        /// Where the event was read from.
        var source: SourceCoordinates? { result?.source ?? deadLetter?.source }
    }

    let resultTopic: String
    private(set) var all: [Output] = []
    private(set) var byEventID: [String: [Output]] = [:]
    /// Records that decoded as neither a result nor a dead letter.
    private(set) var undecodable: [ConsumerRecord] = []

    /// Results are read from `resultTopic`, dead letters from any other topic.
    init(resultTopic: String) {
        self.resultTopic = resultTopic
    }

    /// Decodes and indexes one more record.
    mutating func append(_ record: ConsumerRecord) {
        let data = Data(record.value ?? [])
        let output: Output
        if record.topic == resultTopic, let result = try? JSONDecoder().decode(EnrichedResult.self, from: data) {
            output = Output(record: record, result: result, deadLetter: nil, eventID: result.id)
        } else if record.topic != resultTopic, let letter = try? JSONDecoder().decode(DeadLetter.self, from: data) {
            output = Output(record: record, result: nil, deadLetter: letter, eventID: record.keyText ?? "")
        } else {
            undecodable.append(record)
            return
        }
        all.append(output)
        byEventID[output.eventID, default: []].append(output)
    }

    var count: Int { all.count + undecodable.count }

    /// Events of `sent` with no output at all.
    func missing(_ sent: [SentEvent]) -> [SentEvent] {
        sent.filter { byEventID[$0.id] == nil }
    }

    /// Events of `sent` with more than one output.
    func duplicated(_ sent: [SentEvent]) -> [SentEvent] {
        sent.filter { (byEventID[$0.id]?.count ?? 0) > 1 }
    }

    /// Whether every event of `sent` has at least one output.
    func coversAll(_ sent: [SentEvent]) -> Bool {
        sent.allSatisfy { byEventID[$0.id] != nil }
    }

    var results: [EnrichedResult] { all.compactMap(\.result) }
}

extension Array where Element == SentEvent {
    /// A short list of ids for failure messages.
    var idList: String {
        let shown = prefix(12).map(\.id).joined(separator: ", ")
        return count > 12 ? "\(shown), … (\(count) in all)" : shown
    }
}
