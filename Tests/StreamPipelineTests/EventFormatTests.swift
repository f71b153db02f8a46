import Testing
@testable import StreamPipeline

/// The committed bad-input list: every value here must be refused with the given code, never crash.
let badEvents: [(name: String, value: [UInt8], code: EventDecodingError.Code)] = [
    ("invalid UTF-8", [0xff, 0xfe, 0x41], .invalidUTF8),
    ("truncated UTF-8 sequence", Array("好".utf8.dropLast()), .invalidUTF8),
    ("malformed JSON", Array(#"{"id": 1, "text": "好"#.utf8), .malformedJSON),
    ("trailing garbage", Array(#"{"text": "好"} x"#.utf8), .malformedJSON),
    ("text under another field name", Array(#"{"content": "好"}"#.utf8), .missingText),
    ("boolean text", Array(#"{"text": true}"#.utf8), .textNotString),
    ("missing text", Array(#"{"id": "a"}"#.utf8), .missingText),
    ("null text", Array(#"{"id": "a", "text": null}"#.utf8), .missingText),
    ("numeric text", Array(#"{"text": 42}"#.utf8), .textNotString),
    ("object text", Array(#"{"text": {"zh": "好"}}"#.utf8), .textNotString),
    ("empty text", Array(#"{"text": ""}"#.utf8), .emptyText),
    ("white-space text", Array("{\"text\": \" \\t\\u3000 \"}".utf8), .emptyText),
    ("non-string pair", Array(#"{"text": "好", "text_pair": [1]}"#.utf8), .textPairNotString),
    ("empty record", [], .emptyRecord),
    ("white-space plain text", Array("   \n".utf8), .emptyText),
]

@Suite struct EventFormatTests {
    @Test(arguments: badEvents.map(\.name))
    func badInputIsRefusedWithItsReason(name: String) throws {
        let event = try #require(badEvents.first { $0.name == name })
        let result = EventFormat().decode(event.value)
        guard case .failure(let error) = result else {
            Issue.record("\(name) was accepted: \(result)")
            return
        }
        #expect(error.code == event.code, "\(name): \(error)")
        #expect(!error.message.isEmpty)
    }

    @Test func aNullTextIsNamedAsNullNotAsMissing() {
        guard case .failure(let error) = EventFormat().decode(Array(#"{"id": "a", "text": null}"#.utf8)) else {
            Issue.record("a null text was accepted")
            return
        }
        #expect(error.message == #""text" is null, expected a string"#)
    }

    @Test func jsonFormatRefusesWhatIsNotAnObject() {
        for value in [#"["text"]"#, #""好""#, "42", "房间很干净"] {
            guard case .failure(let error) = EventFormat(kind: .json).decode(Array(value.utf8)) else {
                Issue.record("\(value) was accepted as a JSON event")
                continue
            }
            #expect([.notAnObject, .malformedJSON].contains(error.code), "\(value): \(error)")
        }
    }

    @Test func jsonEventsKeepIdTextAndPair() throws {
        let event = try EventFormat().decode(Array(#"{"id": 7, "text": "房间很干净", "text_pair": "服务好"}"#.utf8)).get()
        #expect(event == TextEvent(id: "7", text: "房间很干净", textPair: "服务好"))
    }

    @Test func plainTextIsAnEventOfItsOwn() throws {
        let event = try EventFormat().decode(Array("早餐不错".utf8)).get()
        #expect(event == TextEvent(id: nil, text: "早餐不错"))
    }

    @Test func fieldNamesAreConfigurable() throws {
        let format = EventFormat(kind: .json, idField: "review_id", textField: "body", textPairField: "title")
        let event = try format.decode(Array(#"{"review_id": "r1", "body": "安静", "title": "好"}"#.utf8)).get()
        #expect(event == TextEvent(id: "r1", text: "安静", textPair: "好"))
    }

    @Test func textFormatTakesBracesLiterally() throws {
        let event = try EventFormat(kind: .text).decode(Array("{不是 JSON}".utf8)).get()
        #expect(event.text == "{不是 JSON}")
    }
}

@Suite struct OffsetTrackerTests {
    @Test func commitsOnlyOverAContiguousAcknowledgedRun() {
        var tracker = OffsetTracker()
        for offset in Int64(10)...14 { tracker.register(offset) }
        #expect(tracker.nextCommit == nil)
        tracker.acknowledge(12)
        tracker.acknowledge(11)
        #expect(tracker.nextCommit == nil, "offset 10 is still in flight")
        tracker.acknowledge(10)
        #expect(tracker.nextCommit == 13)
        tracker.markCommitted(13)
        #expect(tracker.nextCommit == nil)
        tracker.acknowledge(14)
        #expect(tracker.nextCommit == nil, "offset 13 is still in flight")
        tracker.acknowledge(13)
        #expect(tracker.nextCommit == 15)
        #expect(tracker.inFlight == 0)
    }

    @Test func duplicateAndUnknownAcknowledgementsAreIgnored() {
        var tracker = OffsetTracker()
        tracker.register(0)
        tracker.register(1)
        let first = tracker.acknowledge(1)
        let again = tracker.acknowledge(1)
        let unknown = tracker.acknowledge(7)
        #expect(first)
        #expect(!again)
        #expect(!unknown)
        #expect(tracker.nextCommit == nil)
    }
}

@Suite struct CanaryTests {
    @Test func canaryBucketsAreStableAndProportional() {
        let keys = (0..<2000).map { Array("customer-\($0)".utf8) }
        let first = keys.map(CanaryBucket.of)
        #expect(first == keys.map(CanaryBucket.of))
        let share = Double(first.filter { $0 < 20 }.count) / Double(keys.count)
        #expect(abs(share - 0.20) < 0.05, "20% canary routed \(share * 100)% of keys")
    }
}
