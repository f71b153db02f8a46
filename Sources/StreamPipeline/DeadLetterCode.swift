/// Why an event became a dead letter: the `error.code` of the dead-letter record (schemas/dead-letter.schema.json
/// lists the same values), the `code` label of `minirbt_dead_letters_total`, and the code `infer` reports for
/// a line it cannot read. One set, so the three cannot drift apart.
public enum DeadLetterCode: String, Sendable, Codable, CaseIterable {
    // The record is not an event (EventDecodingError).
    case invalidUTF8 = "invalid_utf8"
    case malformedJSON = "malformed_json"
    case notAnObject = "not_an_object"
    case missingText = "missing_text"
    case textNotString = "text_not_string"
    case emptyText = "empty_text"
    case textPairNotString = "text_pair_not_string"
    case emptyRecord = "empty_record"
    // The event could not be answered.
    /// The model failed on the batch, and again on the event alone.
    case inferenceFailed = "inference_failed"
    /// The broker refused the result as it was (e.g. too large for the output topic).
    case publishFailed = "publish_failed"
    /// The result would exceed the largest record (`message.max.bytes`), e.g. a huge id.
    case resultTooLarge = "result_too_large"
    /// The result could not be encoded as JSON (a non-finite score).
    case unencodableResult = "unencodable_result"
    /// A shard lost track of the event (a bug): it is answered rather than lost.
    case `internal`
}
