// fuzz-event: the input event decoder (StreamPipeline/InputEvent.swift), every format and a few field
// layouts. Input: one option byte (format kind, field names), then the record value.
import FuzzSupport
import StreamPipeline

/// (id, text, text_pair) field names: the defaults, renamed fields, fields that coincide, an empty name,
/// non-ASCII names and names JSON has to escape.
let fieldLayouts: [(String, String, String)] = [
    ("id", "text", "text_pair"),
    ("event_id", "body", "context"),
    ("text", "text", "text"),
    ("", "", ""),
    ("标识", "文本", "句对"),
    ("i\"d", "te\\xt", "pa\u{0}ir"),
]

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    var input = FuzzInput(data, size)
    let options = Int(input.byte())
    let kinds = EventFormat.Kind.allCases
    let (idField, textField, pairField) = fieldLayouts[(options / kinds.count) % fieldLayouts.count]
    let format = EventFormat(kind: kinds[options % kinds.count], idField: idField, textField: textField,
                             textPairField: pairField)
    switch format.decode(input.bytes) {
    case .success(let event):
        // What the decoder promises for an accepted event.
        precondition(event.text.unicodeScalars.contains { !$0.properties.isWhitespace }, "accepted a blank text")
    case .failure(let error):
        _ = error.description
    }
    return 0
}

runFuzzer(fuzz)
