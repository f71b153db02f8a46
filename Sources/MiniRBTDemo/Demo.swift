import ArgumentParser
import Foundation
import Kafka
import Logging

/// Feeds a JSON Lines file of labelled reviews through a running `minirbt-stream run` and follows its output
/// topic, printing a live summary (events/s, latency, label counts, accuracy) and a few enriched results.
/// Used by scripts/demo.sh and the pipeline benchmark.
@main
struct DemoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "minirbt-demo",
        abstract: "Stream a labelled JSON Lines file through minirbt-stream and watch the results arrive.")

    @Option(help: "Kafka bootstrap servers.")
    var brokers: String

    @Option(help: "JSON Lines file of {\"id\", \"text\", \"label\"} events.")
    var input: String?

    @Flag(help: "Only create the topics, then exit.")
    var createOnly = false

    @Option(help: "Topic the service consumes.")
    var inputTopic = "reviews"

    @Option(help: "Topic the service publishes results to.")
    var outputTopic = "reviews-sentiment"

    @Option(help: "Dead-letter topic of the service (created with the others when missing).")
    var dlqTopic = "reviews-dead-letters"

    @Option(help: "Partitions of the topics created when missing.")
    var partitions: Int32 = 4

    @Option(help: "Events to send (the file is repeated as needed); 0 sends the file once.")
    var events = 0

    @Option(help: "Results to print in full at the end.")
    var show = 3

    @Option(help: "Seconds to wait for all results before giving up.")
    var timeout = 300

    func run() async throws {
        var logger = Logger(label: "minirbt-demo")
        logger.logLevel = .warning
        let kafka = KafkaConfiguration(bootstrapServers: brokers.split(separator: ",").map(String.init),
                                       clientID: "minirbt-demo")
        let admin = try KafkaAdmin(configuration: kafka, logger: logger)
        for topic in [inputTopic, outputTopic, dlqTopic] {
            _ = try await admin.createTopic(TopicSpecification(name: topic, partitions: topic == dlqTopic ? 1 : partitions))
        }
        if createOnly { return }

        guard let input else { throw ValidationError("say which events to send: --input FILE") }
        let lines = try String(contentsOfFile: input, encoding: .utf8).split(separator: "\n").map(String.init)
        guard !lines.isEmpty else { throw ValidationError("\(input) has no events") }
        let total = events > 0 ? events : lines.count

        var labels: [String: String] = [:]
        var keys: [String] = []
        for index in 0..<total {
            let line = lines[index % lines.count]
            let key = "event-\(index)"
            keys.append(key)
            if let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
               let label = object["label"] as? String {
                labels[key] = label
            }
        }

        let consumer = try KafkaConsumer(configuration: ConsumerConfiguration(kafka: kafka), logger: logger)
        let partitions = try await admin.describeTopic(outputTopic).partitionCount
        var start: [TopicPartition: KafkaOffset] = [:]
        for partition in 0..<Int32(partitions) {
            let topicPartition = TopicPartition(topic: outputTopic, partition: partition)
            start[topicPartition] = .offset(try await consumer.watermarks(topicPartition).high)
        }
        try await consumer.assign(start)

        let producer = try KafkaProducer(configuration: ProducerConfiguration(kafka: kafka), logger: logger)
        let began = ContinuousClock.now
        let feeder = Task {
            for index in 0..<total {
                try await producer.enqueue(ProducerRecord(topic: inputTopic, key: Array(keys[index].utf8),
                                                          value: Array(lines[index % lines.count].utf8))) { _ in }
            }
            try await producer.flush(timeout: .seconds(60))
        }

        var summary = Summary()
        var firstResult: ContinuousClock.Instant?
        var samples: [String] = []
        var lastReport = ContinuousClock.now
        print("sent \(total) events to \(inputTopic); following \(outputTopic)…")
        let deadline = ContinuousClock.now + .seconds(timeout)
        for try await event in consumer.events {
            guard case .record(let record) = event, let value = record.value else { continue }
            let key = record.key.map { String(decoding: $0, as: UTF8.self) } ?? ""
            summary.add(value, expected: labels[key])
            if firstResult == nil { firstResult = ContinuousClock.now }
            if samples.count < show { samples.append(String(decoding: value, as: UTF8.self)) }
            if ContinuousClock.now - lastReport > .seconds(2) || summary.count >= total {
                lastReport = ContinuousClock.now
                print(summary.line(elapsed: ContinuousClock.now - (firstResult ?? began), total: total))
            }
            if summary.count >= total || ContinuousClock.now > deadline { break }
        }
        try await feeder.value
        print("\nA few enriched results:")
        samples.forEach { print("  \($0)") }
        print("\n" + summary.line(elapsed: ContinuousClock.now - (firstResult ?? began), total: total))
        print("(events/s counts from the first result: a consumer group's first join takes a while on the test broker)")
        await consumer.close()
        await producer.close()
        if summary.count < total {
            throw ValidationError("only \(summary.count) of \(total) results arrived within \(timeout) s")
        }
    }
}

struct Summary {
    var count = 0
    var labelCounts: [String: Int] = [:]
    var correct = 0
    var labelled = 0
    var latencies: [Double] = []

    mutating func add(_ value: [UInt8], expected: String?) {
        count += 1
        guard let object = try? JSONSerialization.jsonObject(with: Data(value)) as? [String: Any] else { return }
        if let label = object["label"] as? String {
            labelCounts[label, default: 0] += 1
            if let expected {
                labelled += 1
                if expected == label { correct += 1 }
            }
        }
        if let latency = object["latency_ms"] as? Double { latencies.append(latency) }
    }

    func line(elapsed: Duration, total: Int) -> String {
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        let sorted = latencies.sorted()
        func percentile(_ p: Double) -> String {
            sorted.isEmpty ? "-" : String(format: "%.1f", sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))])
        }
        let accuracy = labelled > 0 ? String(format: "%.1f%%", 100 * Double(correct) / Double(labelled)) : "-"
        let labels = labelCounts.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
        return String(format: "%5d/%d results  %7.1f events/s  ", count, total, Double(count) / max(seconds, 1e-9))
            + "service latency p50 \(percentile(0.5)) ms p99 \(percentile(0.99)) ms  \(labels)  accuracy \(accuracy)"
    }
}
