// fuzz-manifest: a registry bundle's manifest.json (ModelControl/Registry/ModelManifest.swift): decoding, the
// name/version check and the file-entry checks (against an empty bundle directory), then re-encoding.
// Input: the file.
import Foundation
import FuzzSupport
@testable import ModelControl

let emptyBundle: URL = {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("fuzz-manifest-\(getpid())")
    try! FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}()

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let input = FuzzInput(data, size)
    let manifest: ModelManifest
    do {
        manifest = try JSONDecoder.manifest.decode(ModelManifest.self, from: input.data)
    } catch {
        _ = "\(error)"
        return 0
    }
    _ = try? manifest.reference
    do {
        try BundleVerifier.checkFiles(manifest.files, in: emptyBundle)
        precondition(manifest.files.isEmpty, "an empty bundle passed a manifest listing files")
    } catch {
        _ = error.description
    }
    // What publish writes, list reads back.
    let encoded = try! manifest.encoded()
    var decoded = try! JSONDecoder.manifest.decode(ModelManifest.self, from: encoded)
    // The ISO-8601 decoder accepts fractional seconds ("12:0:0.50Z" too); the encoder writes whole seconds.
    precondition(abs(decoded.createdAt.timeIntervalSince(manifest.createdAt)) < 1, "created_at moves through encoding")
    decoded.createdAt = manifest.createdAt
    precondition(decoded == manifest, "manifest changes through encode and decode")
    return 0
}

runFuzzer(fuzz)
