import CZlib
import Foundation
import LoRACore

extension BPETokenizer {
    /// Load from a diffusers/Hugging Face `tokenizer/` folder (vocab.json +
    /// merges.txt), a merges.txt alone, or OpenAI's `bpe_simple_vocab_16e6.txt.gz`.
    public static func load(_ path: String) throws(ModelError) -> BPETokenizer {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw ModelError(.io, "no tokenizer here", file: path)
        }
        var mergesPath = path, vocabPath: String?
        if isDirectory.boolValue {
            mergesPath = path + "/merges.txt"
            vocabPath = path + "/vocab.json"
            guard FileManager.default.fileExists(atPath: mergesPath) else {
                throw ModelError(.io, "tokenizer folder has no merges.txt", file: path)
            }
        }
        let text = try readText(mergesPath)
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        if let first = lines.first, first.hasPrefix("#version") || first.hasPrefix("\"bpe_simple_vocab") || first.contains("bpe_simple_vocab") {
            lines.removeFirst()
        }
        // CLIP uses exactly 49152 − 256 − 2 merges; OpenAI's file carries more.
        let limit = 49152 - 256 - 2
        var merges: [(String, String)] = []
        for line in lines where merges.count < limit {
            let parts = line.split(separator: " ", omittingEmptySubsequences: true)
            guard parts.count == 2 else { continue }
            merges.append((String(parts[0]), String(parts[1])))
        }
        guard merges.count > 1000 else { throw ModelError(.invalid, "not a CLIP merges file (\(merges.count) merges)", file: mergesPath) }
        var vocabulary: [String: Int]?
        if let vocabPath, FileManager.default.fileExists(atPath: vocabPath) {
            guard let data = FileManager.default.contents(atPath: vocabPath),
                  let object = try? JSONSerialization.jsonObject(with: data) as? [String: Int] else {
                throw ModelError(.invalid, "vocab.json is not a token → id map", file: vocabPath)
            }
            vocabulary = object
        }
        return BPETokenizer(merges: merges, vocabulary: vocabulary)
    }

    static func readText(_ path: String) throws(ModelError) -> String {
        guard let data = FileManager.default.contents(atPath: path) else { throw ModelError(.io, "cannot read", file: path) }
        if data.count > 2 && data[0] == 0x1F && data[1] == 0x8B {
            return String(decoding: try gunzip(data, path: path), as: UTF8.self)
        }
        return String(decoding: data, as: UTF8.self)
    }

    static func gunzip(_ data: Data, path: String) throws(ModelError) -> [UInt8] {
        var stream = z_stream()
        // 16 + MAX_WBITS: a gzip wrapper.
        guard inflateInit2_(&stream, 16 + MAX_WBITS, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
            throw ModelError(.io, "cannot initialise zlib", file: path)
        }
        defer { inflateEnd(&stream) }
        var output: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        var status: Int32 = Z_OK
        let input = [UInt8](data)
        input.withUnsafeBufferPointer { src in
            stream.next_in = UnsafeMutablePointer(mutating: src.baseAddress)
            stream.avail_in = uInt(src.count)
            repeat {
                chunk.withUnsafeMutableBufferPointer { dst in
                    stream.next_out = dst.baseAddress
                    stream.avail_out = uInt(dst.count)
                    status = CZlib.inflate(&stream, Z_NO_FLUSH)
                    output.append(contentsOf: dst[0..<(dst.count - Int(stream.avail_out))])
                }
            } while status == Z_OK && output.count < 64 << 20
        }
        guard status == Z_STREAM_END else { throw ModelError(.invalid, "not a valid gzip file", file: path) }
        return output
    }

    /// Where a tokenizer is looked for, in order.
    public static func candidates(near checkpoint: String?) -> [String] {
        var places: [String] = []
        if let env = ProcessInfo.processInfo.environment["LORA_TOOLS_TOKENIZER"] { places.append(env) }
        if let checkpoint {
            let folder = (checkpoint as NSString).deletingLastPathComponent
            places += [folder + "/tokenizer", folder + "/bpe_simple_vocab_16e6.txt.gz"]
        }
        let home = ProcessInfo.processInfo.environment["HOME"] ?? ""
        // Hugging Face's own order: HF_HUB_CACHE, then HF_HOME/hub, then $XDG_CACHE_HOME (or ~/.cache)/huggingface/hub.
        let env = ProcessInfo.processInfo.environment
        let hub = env["HF_HUB_CACHE"] ?? env["HF_HOME"].map { $0 + "/hub" }
            ?? (env["XDG_CACHE_HOME"] ?? home + "/.cache") + "/huggingface/hub"
        for model in ["models--openai--clip-vit-large-patch14", "models--runwayml--stable-diffusion-v1-5/snapshots/*/tokenizer",
                      "models--stabilityai--stable-diffusion-xl-base-1.0/snapshots/*/tokenizer"] {
            let root = hub + "/" + model.split(separator: "/").first!
            if let snapshots = try? FileManager.default.contentsOfDirectory(atPath: root + "/snapshots") {
                for s in snapshots.sorted() {
                    places.append(model.contains("tokenizer") ? root + "/snapshots/" + s + "/tokenizer" : root + "/snapshots/" + s)
                }
            } else {
                places.append(root + "/snapshots/<revision>" + (model.contains("tokenizer") ? "/tokenizer" : ""))
            }
        }
        places.append(home + "/.cache/clip/bpe_simple_vocab_16e6.txt.gz")
        return places
    }

    /// The first tokenizer found among `candidates`, or an error listing where it looked.
    public static func locate(explicit: String?, near checkpoint: String?) throws(ModelError) -> BPETokenizer {
        if let explicit { return try load(explicit) }
        let places = candidates(near: checkpoint)
        for place in places where FileManager.default.fileExists(atPath: place) {
            if let tokenizer = try? load(place) { return tokenizer }
        }
        throw ModelError(.io, "no CLIP tokenizer found; pass --tokenizer <folder with vocab.json and merges.txt, or bpe_simple_vocab_16e6.txt.gz>. Looked in: "
                         + places.joined(separator: ", "))
    }
}
