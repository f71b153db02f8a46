/// A failure of the end-to-end harness or of an expectation that cannot go on; says what was awaited.
struct E2EFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
