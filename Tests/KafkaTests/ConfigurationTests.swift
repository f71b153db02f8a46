import Kafka
import KafkaTestSupport
import Testing

@Suite("Kafka configuration and library")
struct ConfigurationTests {
    @Test("the loaded librdkafka is at least 2.3")
    func librdkafkaVersion() {
        let version = KafkaLibrary.version
        print("[KafkaTests] librdkafka version in use: \(version)")
        let (major, minor, _) = KafkaLibrary.versionComponents
        #expect(major > 2 || (major == 2 && minor >= 3), "librdkafka \(version) is older than 2.3")
        #expect(version.hasPrefix("\(major).\(minor)."))
    }

    @Test("an unknown librdkafka key is a typed error naming the key")
    func unknownKeyIsNamed() {
        var kafka = TestBroker.kafka
        kafka.properties["no.such.property"] = "1"
        do {
            _ = try KafkaProducer(configuration: ProducerConfiguration(kafka: kafka), logger: TestBroker.logger)
            Issue.record("an unknown property was accepted")
        } catch {
            #expect(error.configurationKey == "no.such.property")
            #expect(error.description.contains("no.such.property"))
        }
    }

    @Test("an invalid value for a known key is a typed error naming the key")
    func invalidValueIsNamed() {
        var kafka = TestBroker.kafka
        kafka.properties["session.timeout.ms"] = "not-a-number"
        #expect(throws: KafkaError.self) {
            try KafkaConsumer(configuration: ConsumerConfiguration(kafka: kafka, groupID: "g"), logger: TestBroker.logger)
        }
        do {
            _ = try KafkaConsumer(configuration: ConsumerConfiguration(kafka: kafka, groupID: "g"), logger: TestBroker.logger)
        } catch {
            #expect(error.configurationKey == "session.timeout.ms")
            #expect(error.message.contains("session.timeout.ms"))
        }
    }

    @Test("KAFKA_* environment variables become librdkafka properties")
    func environmentMapping() {
        let properties = KafkaConfiguration.properties(fromEnvironment: [
            "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "KAFKA_SASL_MECHANISM": "PLAIN",
            "HOME": "/root",
            "KAFKA_": "ignored",
        ])
        #expect(properties == ["security.protocol": "SASL_SSL", "sasl.mechanism": "PLAIN"])
    }

    @Test("Kubernetes service-link variables of a Service named kafka are ignored, not passed to librdkafka")
    func kubernetesServiceLinksAreIgnored() throws {
        // What the kubelet injects for `Service kafka` (port 9092), beside a real setting.
        let environment = [
            "KAFKA_PORT": "tcp://10.0.0.7:9092",
            "KAFKA_SERVICE_HOST": "10.0.0.7",
            "KAFKA_SERVICE_PORT": "9092",
            "KAFKA_SERVICE_PORT_BROKER": "9092",
            "KAFKA_PORT_9092_TCP": "tcp://10.0.0.7:9092",
            "KAFKA_PORT_9092_TCP_ADDR": "10.0.0.7",
            "KAFKA_PORT_9092_TCP_PORT": "9092",
            "KAFKA_PORT_9092_TCP_PROTO": "tcp",
            "KAFKA_SECURITY_PROTOCOL": "PLAINTEXT",
            "KAFKA_SASL_PASWORD": "typo",
        ]
        var kafka = TestBroker.kafka
        let ignored = kafka.applyEnvironment(environment)
        #expect(kafka.properties == ["security.protocol": "PLAINTEXT"])
        #expect(ignored.filter(\.isServiceLink).map(\.name) == environment.keys.filter {
            $0 != "KAFKA_SECURITY_PROTOCOL" && $0 != "KAFKA_SASL_PASWORD" }.sorted())
        #expect(ignored.filter { !$0.isServiceLink }.map(\.name) == ["KAFKA_SASL_PASWORD"])
        // Both clients start with that environment (before, librdkafka refused "port" and the others).
        _ = try KafkaProducer(configuration: ProducerConfiguration(kafka: kafka), logger: TestBroker.logger)
        _ = try KafkaConsumer(configuration: ConsumerConfiguration(kafka: kafka, groupID: "links"), logger: TestBroker.logger)
        print("service links: \(environment.count) KAFKA_* variables, \(kafka.properties.count) passed, \(ignored.count) ignored")
    }

    @Test("key=value assignments split at the first '=' and reject malformed text")
    func assignments() throws {
        var kafka = TestBroker.kafka
        try kafka.apply(assignments: ["sasl.jaas.config=a=b", "linger.ms=7"])
        #expect(kafka.properties == ["sasl.jaas.config": "a=b", "linger.ms": "7"])
        #expect(throws: KafkaConfigurationError.malformedAssignment("nokey")) {
            try kafka.apply(assignments: ["nokey"])
        }
        #expect(throws: KafkaConfigurationError.malformedAssignment("=value")) {
            try kafka.apply(assignments: ["=value"])
        }
    }

    @Test("pass-through properties reach only the clients librdkafka says they apply to")
    func propertiesAreRoutedByClient() throws {
        #expect(KafkaLibrary.scope(ofProperty: "fetch.wait.max.ms") == .consumer)
        #expect(KafkaLibrary.scope(ofProperty: "compression.codec") == .producer)
        #expect(KafkaLibrary.scope(ofProperty: "security.protocol") == .both)
        #expect(KafkaLibrary.scope(ofProperty: "no.such.property") == .both)

        var kafka = TestBroker.kafka
        kafka.properties = ["fetch.wait.max.ms": "50", "compression.codec": "lz4", "socket.keepalive.enable": "true"]
        #expect(kafka.properties(for: .consumer) == ["fetch.wait.max.ms": "50", "socket.keepalive.enable": "true"])
        #expect(kafka.properties(for: .producer) == ["compression.codec": "lz4", "socket.keepalive.enable": "true"])
        // Both clients accept the shared list (librdkafka would otherwise warn the key "will be ignored").
        _ = try KafkaProducer(configuration: ProducerConfiguration(kafka: kafka), logger: TestBroker.logger)
        _ = try KafkaConsumer(configuration: ConsumerConfiguration(kafka: kafka, groupID: "routing"), logger: TestBroker.logger)
    }
}
