import CKernels
import Dispatch

/// SHA-256 over bytes (SHA-NI when the CPU has it).
public struct SHA256: Sendable {
    private var context = lt_sha256_ctx()

    public init() { lt_sha256_init(&context) }

    public mutating func update(_ bytes: UnsafeRawBufferPointer) {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return }
        lt_sha256_update(&context, base, bytes.count)
    }

    public mutating func update(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { update($0) }
    }

    public mutating func finalize() -> [UInt8] {
        var digest = [UInt8](repeating: 0, count: 32)
        lt_sha256_final(&context, &digest)
        return digest
    }

    public static func hex(_ bytes: UnsafeRawBufferPointer) -> String {
        var h = SHA256()
        h.update(bytes)
        return h.finalize().hexString
    }
}

extension Array where Element == UInt8 {
    public var hexString: String {
        let digits = Array("0123456789abcdef".utf8)
        var out = [UInt8]()
        out.reserveCapacity(count * 2)
        for byte in self {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0x0F)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}

/// The hashes model sites and AUTOMATIC1111 show for a file.
public struct FileHashes: Sendable, Codable, Equatable {
    /// SHA-256 of the whole file (Civitai "SHA256"; `ss_new_sd_model_hash`).
    public var sha256: String
    /// First 10 hex of `sha256`: Civitai AutoV2, A1111's checkpoint short hash.
    public var autoV2: String
    /// SHA-256 of the 64 KiB at 1 MiB, first 8 hex: A1111's legacy model hash (AutoV1).
    public var autoV1: String
    /// safetensors only: SHA-256 of the tensor data (header excluded), the
    /// "addnet" hash; A1111's LoRA hash and Civitai AutoV3 are its first 12 hex.
    public var addnet: String?
    public var autoV3: String? { addnet.map { String($0.prefix(12)) } }
    /// What A1111 writes in `Lora hashes`: the addnet hash for safetensors,
    /// the whole-file SHA-256 for pickle LoRAs, first 12 hex either way.
    public var a1111LoRAHash: String { String((addnet ?? sha256).prefix(12)) }

    enum CodingKeys: String, CodingKey { case sha256, autoV2, autoV1, addnet, autoV3 }

    public init(sha256: String, autoV1: String, addnet: String?) {
        self.sha256 = sha256
        self.autoV2 = String(sha256.prefix(10))
        self.autoV1 = autoV1
        self.addnet = addnet
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(sha256: try c.decode(String.self, forKey: .sha256), autoV1: try c.decode(String.self, forKey: .autoV1),
                  addnet: try c.decodeIfPresent(String.self, forKey: .addnet))
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(sha256, forKey: .sha256)
        try c.encode(autoV2, forKey: .autoV2)
        try c.encode(autoV1, forKey: .autoV1)
        try c.encodeIfPresent(addnet, forKey: .addnet)
        try c.encodeIfPresent(autoV3, forKey: .autoV3)
    }
}

public enum Hashing {
    /// Chunk size for streaming over a mapping: big enough for throughput,
    /// small enough that dropping pages behind us keeps RSS flat.
    static let chunk = 16 << 20

    /// A1111's legacy `model_hash`: SHA-256 of 0x10000 bytes at 0x100000.
    public static func legacyModelHash(_ file: MappedFile) -> String {
        let start = min(0x100000, file.size)
        let count = min(0x10000, file.size - start)
        return String(SHA256.hex(file.slice(start, count)).prefix(8))
    }

    /// SHA-256 of a byte range of a mapped file, streamed with progress.
    public static func sha256(_ file: MappedFile, from start: Int = 0, count: Int? = nil,
                              progress: ((Int) -> Void)? = nil) -> String {
        let total = count ?? (file.size - start)
        var hasher = SHA256()
        var done = 0
        file.advise(.sequential, offset: start, count: total)
        while done < total {
            let n = min(chunk, total - done)
            hasher.update(file.slice(start + done, n))
            file.advise(.dontNeed, offset: start + done, count: n)
            done += n
            progress?(n)
        }
        return hasher.finalize().hexString
    }

    /// All hashes of a model file. The whole-file and data-only passes run on
    /// two threads at once (each is sequential by nature); progress follows the
    /// whole-file pass, so a bar shows the file's size, not the bytes hashed twice.
    public static func hashes(of model: ModelFile, progress: (@Sendable (Int) -> Void)? = nil) -> FileHashes {
        let file = model.file
        let passes: [String?] = (try? Parallel.map(model.dataOffset == nil ? 1 : 2) { job -> String? in
            job == 0 ? sha256(file, progress: progress) : model.dataOffset.map { sha256(file, from: $0) }
        }) ?? []
        return FileHashes(sha256: passes.first.flatMap { $0 } ?? "", autoV1: legacyModelHash(file), addnet: passes.count > 1 ? passes[1] : nil)
    }
}
