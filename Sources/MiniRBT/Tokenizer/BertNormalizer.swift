import Foundation

/// BERT's text normalization, in the order `tokenizers`' `BertNormalizer` applies it:
/// clean (delete controls, turn whitespace into spaces), put spaces around CJK ideographs,
/// strip accents (NFD, then delete nonspacing marks), lower-case (per code point, no context).
///
/// Per-code-point lower-casing means a final capital sigma becomes "σ", not "ς" as Python's
/// `str.lower()` would give; the reference tokenizer does the same.
struct BertNormalizer: Sendable {
    let lowercase: Bool
    let stripAccents: Bool
    let separateChineseCharacters: Bool

    /// Appends the normalized scalars of `text` to `output`.
    ///
    /// `scratch` is reused between calls to spare an allocation per text.
    func normalize(_ text: Substring, into output: inout [Unicode.Scalar],
                   scratch cleaned: inout [Unicode.Scalar]) {
        cleaned.removeAll(keepingCapacity: true)
        var needsDecomposition = false
        for scalar in text.unicodeScalars {
            // Ideographs are neither controls nor whitespace, and most of the text: decide them first.
            if separateChineseCharacters && scalar.isBertChineseCharacter {
                if stripAccents && !scalar.isCanonicallyStable { needsDecomposition = true }
                cleaned.append(" ")
                cleaned.append(scalar)
                cleaned.append(" ")
                continue
            }
            if scalar.value == 0 || scalar.value == 0xFFFD || scalar.isBertControl { continue }
            if scalar.isBertWhitespace {
                cleaned.append(" ")
                continue
            }
            if stripAccents && !scalar.isCanonicallyStable { needsDecomposition = true }
            cleaned.append(scalar)
        }
        if needsDecomposition {
            let decomposed = String(String.UnicodeScalarView(cleaned)).decomposedStringWithCanonicalMapping
            for scalar in decomposed.unicodeScalars { appendCaseAndAccentFolded(scalar, to: &output) }
        } else {
            for scalar in cleaned { appendCaseAndAccentFolded(scalar, to: &output) }
        }
    }

    private func appendCaseAndAccentFolded(_ scalar: Unicode.Scalar, to output: inout [Unicode.Scalar]) {
        if scalar.value < 0x80 {
            if lowercase, (0x41...0x5A).contains(scalar.value),
               let lower = Unicode.Scalar(scalar.value + 0x20) {
                output.append(lower)
            } else {
                output.append(scalar)
            }
            return
        }
        if scalar.isBertChineseCharacter {
            // No case, no marks: skip the property lookups for the bulk of Chinese text.
            output.append(scalar)
            return
        }
        let properties = scalar.properties
        if stripAccents && scalar.isBertNonspacingMark { return }
        if lowercase && properties.changesWhenLowercased {
            output.append(contentsOf: properties.lowercaseMapping.unicodeScalars)
        } else {
            output.append(scalar)
        }
    }
}
