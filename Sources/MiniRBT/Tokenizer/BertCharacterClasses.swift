/// The per-code-point predicates of BERT's normalizer and pre-tokenizer.
///
/// They follow the Hugging Face `tokenizers` (Rust) implementation that `transformers` uses for
/// MiniRBT checkpoints, where it differs from the original Python `BasicTokenizer`; each difference
/// is noted at the predicate. Everything works on `Unicode.Scalar` because the reference works per
/// code point, never per grapheme cluster.
///
/// `tokenizers` takes general categories (controls, punctuation, nonspacing marks) from the
/// `unicode_categories` crate, whose tables are Unicode 8.0: a code point assigned later has no
/// category there, so it is neither deleted, split off nor stripped. The predicates below apply the
/// same cut-off through `properties.age`, or they would disagree on e.g. U+2E43 or U+08D3.
extension Unicode.Scalar {
    /// Assigned in Unicode 8.0 or earlier: known to the reference's category tables.
    var isInReferenceCategoryTables: Bool {
        guard let age = properties.age else { return false }
        return age.major < 8 || (age.major == 8 && age.minor == 0)
    }

    /// A nonspacing mark (Mn) as the reference's accent stripping sees it.
    var isBertNonspacingMark: Bool {
        switch value {
        case 0x1734, 0x1171E: return true  // Mn in Unicode 8.0, Mc since
        case 0x1885, 0x1886, 0xA9BD, 0x111C9: return false  // Lo, Mc or Po in Unicode 8.0, Mn since
        default: return properties.generalCategory == .nonspacingMark && isInReferenceCategoryTables
        }
    }

    /// Characters the normalizer deletes: control, format, private-use and surrogate code points.
    ///
    /// Unassigned code points (Cn) are kept, as in `tokenizers`; the Python tokenizer deletes them.
    /// Tab, line feed and carriage return are whitespace, not controls.
    var isBertControl: Bool {
        switch value {
        case 0x09, 0x0A, 0x0D: return false
        case 0x00..<0x20, 0x7F: return true
        case 0x20..<0x7F: return false
        default:
            switch properties.generalCategory {
            case .control, .format, .privateUse, .surrogate: return isInReferenceCategoryTables
            default: return false
            }
        }
    }

    /// Whitespace as Rust's `char::is_whitespace` (the Unicode White_Space property).
    ///
    /// The Python tokenizer only counts Zs; the property also covers U+2028/U+2029, and U+0085 is
    /// deleted as a control before this is asked.
    var isBertWhitespace: Bool {
        if value < 0x80 { return value == 0x20 || (0x09...0x0D).contains(value) }
        if isBertChineseCharacter { return false }  // the bulk of the traffic: skip the property lookup
        return properties.isWhitespace
    }

    /// Punctuation: every non-alphanumeric printable ASCII character (so `$+<=>^`|~` count too)
    /// and the Unicode P* categories.
    var isBertPunctuation: Bool {
        switch value {
        case 33...47, 58...64, 91...96, 123...126: return true
        case 0..<0x80: return false
        case 0x166D, 0x111C9: return true  // Po in Unicode 8.0, So and Mn since
        case 0x4E00...0x9FFF: return false  // the bulk of the traffic: skip the property lookup
        default:
            switch properties.generalCategory {
            case .connectorPunctuation, .dashPunctuation, .openPunctuation, .closePunctuation,
                 .initialPunctuation, .finalPunctuation, .otherPunctuation:
                return isInReferenceCategoryTables
            default:
                return false
            }
        }
    }

    /// The CJK ideograph blocks BERT surrounds with spaces, so each becomes its own word.
    ///
    /// `tokenizers` starts the Extension E range at U+2B920, not U+2B820 as BERT and the Python
    /// tokenizer do; U+2B820...U+2B91F are therefore not separated here either.
    var isBertChineseCharacter: Bool {
        switch value {
        case 0x4E00...0x9FFF, 0x3400...0x4DBF, 0x20000...0x2A6DF, 0x2A700...0x2B73F,
             0x2B740...0x2B81F, 0x2B920...0x2CEAF, 0xF900...0xFAFF, 0x2F800...0x2FA1F:
            return true
        default:
            return false
        }
    }

    /// True for scalars known to be unchanged by canonical decomposition (NFD) and to have
    /// combining class 0, so text made only of them can skip the NFD pass.
    ///
    /// Covers the scripts of the Chinese review traffic: ASCII, the unified CJK ideographs (not the
    /// compatibility ones, which decompose), CJK symbols and punctuation, general punctuation and the
    /// full-width forms. `TokenizerTests` checks every scalar of these ranges against Foundation.
    var isCanonicallyStable: Bool {
        switch value {
        case 0x00..<0x80, 0x2010...0x205F, 0x3000...0x3029, 0x3030...0x303F, 0x3400...0x4DBF,
             0x4E00...0x9FFF, 0xFF00...0xFFEF, 0x20000...0x2A6DF:
            return true
        default:
            return false
        }
    }
}
