/// A PyTorch `.ckpt`/`.pt`/`.pth`/`.bin` file read without executing it.
///
/// Both containers torch has written are understood: the zip layout of torch
/// 1.6+ (`<archive>/data.pkl` plus one record per storage) and the legacy
/// stream of five pickles followed by size-prefixed storages. Tensors become
/// views on the mapped file, exactly like safetensors tensors.
public struct TorchCheckpoint: Sendable {
    public enum Container: String, Sendable, Codable {
        case zip = "pytorch-zip"
        case legacy = "pytorch-legacy"
    }

    public let file: MappedFile
    public let container: Container
    /// Tensors of the state dict, flattened to dotted names.
    public let tensors: [TensorView]
    /// Non-tensor entries (epoch, global_step, hyper-parameters), summarised.
    public let extras: [(key: String, value: String)]
    /// "state_dict" or "model" when the weights were nested under that key.
    public let stateDictKey: String?

    public init(path: String) throws(ModelError) {
        try self.init(file: MappedFile(path: path))
    }

    public init(file: MappedFile) throws(ModelError) {
        self.file = file
        let bytes = file.bytes
        let root: PickleValue
        let resolve: (PickleStorage) -> (file: MappedFile, offset: Int, bytes: Int)?
        if ZipArchive.looksLikeZip(bytes) {
            container = .zip
            (root, resolve) = try TorchCheckpoint.readZip(file)
        } else if bytes.count > 0 && bytes[0] == 0x80 {
            container = .legacy
            (root, resolve) = try TorchCheckpoint.readLegacy(file)
        } else {
            throw ModelError(.invalid, "not a PyTorch checkpoint (neither a zip archive nor a pickle stream)", file: file.path, offset: 0)
        }

        let (stateDict, key, extras) = TorchCheckpoint.locateStateDict(root)
        stateDictKey = key
        var tensors: [TensorView] = []
        var notes = extras
        var seen = Set<String>()
        try TorchCheckpoint.flatten(stateDict, prefix: "", depth: 0, tensors: &tensors, extras: &notes, seen: &seen,
                                    resolve: resolve, file: file)
        self.tensors = tensors
        self.extras = notes
    }

    // MARK: zip container

    private static func readZip(_ file: MappedFile) throws(ModelError)
        -> (PickleValue, (PickleStorage) -> (file: MappedFile, offset: Int, bytes: Int)?)
    {
        let archive = try ZipArchive(file: file)
        let pickles = archive.members.filter { $0.name == "data.pkl" || $0.name.hasSuffix("/data.pkl") }
        guard let dataPickle = pickles.first else {
            throw ModelError(.invalid, "zip archive has no data.pkl: not a PyTorch checkpoint", file: file.path)
        }
        guard pickles.count == 1 else {
            throw ModelError(.invalid, "zip archive has \(pickles.count) data.pkl records; torch would refuse it", file: file.path)
        }
        let prefix = String(dataPickle.name.dropLast("data.pkl".count))
        if archive.member(named: prefix + "constants.pkl") != nil {
            throw ModelError(.unsupported, "this is a TorchScript archive (a program), not a state dict", file: file.path)
        }
        if let order = archive.member(named: prefix + "byteorder") {
            let (f, offset, count) = try archive.contents(of: order)
            let text = String(decoding: f.slice(offset, count), as: UTF8.self)
            if text != "little" {
                throw ModelError(.unsupported, "byte order '\(text)' is not supported", file: file.path, key: prefix + "byteorder")
            }
        }
        var records: [String: ZipArchive.Member] = [:]
        for member in archive.members where member.name.hasPrefix(prefix + "data/") {
            records[String(member.name.dropFirst(prefix.count + 5))] = member
        }
        // Storages are resolved once each; deflated records are inflated once.
        final class Cache: @unchecked Sendable { var storages: [String: (MappedFile, Int, Int)] = [:] }
        let cache = Cache()
        let (pickleFile, pickleOffset, pickleCount) = try archive.contents(of: dataPickle)
        var machine = PickleMachine(bytes: pickleFile.slice(pickleOffset, pickleCount), path: file.path) { pid throws(ModelError) in
            guard let parts = pid.sequence, parts.count >= 5, parts[0].string == "storage" else {
                throw ModelError(.dangerous, "pickle persistent id is not a storage reference; refusing", file: file.path)
            }
            guard case let .global(.storageType(dtype)) = parts[1] else {
                throw ModelError(.invalid, "pickle storage type is \(parts[1].summary)", file: file.path)
            }
            guard let key = parts[2].string, let count = parts[4].int, count >= 0 else {
                throw ModelError(.invalid, "malformed storage reference", file: file.path)
            }
            guard let member = records[key] else {
                throw ModelError(.invalid, "storage record data/\(key) is missing from the archive", file: file.path, key: key)
            }
            let needed = Int(count).multipliedReportingOverflow(by: dtype?.size ?? 1)
            guard !needed.overflow, member.uncompressedSize >= needed.partialValue else {
                let claim =
                    dtype.map { "\(count) \($0.shortName) elements (\(needed.overflow ? "more than 2^63" : String(needed.partialValue)) bytes)" }
                    ?? "\(count) bytes"
                throw ModelError(.invalid, "storage record data/\(key) holds \(member.uncompressedSize) bytes but the pickle claims \(claim)",
                                 file: file.path, key: key)
            }
            if cache.storages[key] == nil {
                let (f, offset, bytes) = try archive.contents(of: member)
                cache.storages[key] = (f, offset, bytes)
            }
            return .storage(PickleStorage(key: key, dtype: dtype, count: Int(count), viewOffset: 0))
        }
        let root = try machine.run()
        return (root, { storage in cache.storages[storage.key].map { (file: $0.0, offset: $0.1, bytes: $0.2) } })
    }

    // MARK: legacy container

    private static func readLegacy(_ file: MappedFile) throws(ModelError)
        -> (PickleValue, (PickleStorage) -> (file: MappedFile, offset: Int, bytes: Int)?)
    {
        let bytes = file.bytes
        func next(_ start: Int, _ load: @escaping PickleMachine.PersistentLoad) throws(ModelError) -> (PickleValue, Int) {
            var machine = PickleMachine(bytes: bytes, start: start, path: file.path, persistentLoad: load)
            let value = try machine.run()
            return (value, machine.position)
        }
        let noPersistent: PickleMachine.PersistentLoad = { _ throws(ModelError) in
            throw ModelError(.invalid, "unexpected persistent id in a legacy header pickle", file: file.path)
        }
        let (magic, p1) = try next(0, noPersistent)
        guard case let .bigInt(text) = magic, text == "0x1950a86a20f9469cfc6c" else {
            throw ModelError(.invalid, "a pickle, but not a PyTorch checkpoint (no torch magic number)", file: file.path, offset: 0)
        }
        let (version, p2) = try next(p1, noPersistent)
        guard version.int == 1001 else {
            throw ModelError(.unsupported, "legacy torch protocol version \(version.summary) is not supported", file: file.path, offset: UInt64(p1))
        }
        let (sysInfo, p3) = try next(p2, noPersistent)
        if case let .dict(info) = sysInfo, case let .bool(little)? = info["little_endian"], !little {
            throw ModelError(.unsupported, "big-endian legacy checkpoints are not supported", file: file.path)
        }
        final class Roots: @unchecked Sendable { var dtypes: [String: (DType, Int)] = [:] }
        let roots = Roots()
        let (root, p4) = try next(p3) { pid throws(ModelError) in
            guard let parts = pid.sequence, parts.count >= 6, parts[0].string == "storage" else {
                throw ModelError(.dangerous, "pickle persistent id is not a storage reference (a pickled module?); refusing", file: file.path)
            }
            guard case let .global(.storageType(dtype?)) = parts[1], let key = parts[2].string,
                  let count = parts[4].int, count >= 0 else {
                throw ModelError(.invalid, "malformed legacy storage reference", file: file.path)
            }
            roots.dtypes[key] = (dtype, Int(count))
            var viewOffset = 0
            var viewCount = Int(count)
            if let view = parts[5].sequence, view.count == 3, let offset = view[1].int, let size = view[2].int,
               offset >= 0, size >= 0, offset + size <= count {
                viewOffset = Int(offset)
                viewCount = Int(size)
            }
            return .storage(PickleStorage(key: key, dtype: dtype, count: viewCount, viewOffset: viewOffset))
        }
        let (keyList, p5) = try next(p4, noPersistent)
        guard let keys = keyList.sequence?.compactMap(\.string) else {
            throw ModelError(.invalid, "legacy checkpoint: storage key list missing", file: file.path, offset: UInt64(p4))
        }
        // Storages follow, each as [8-byte element count][data], in key-list order.
        var cursor = p5
        var located: [String: (Int, Int)] = [:]
        for key in keys {
            guard let (dtype, expected) = roots.dtypes[key] else {
                throw ModelError(.invalid, "legacy checkpoint: storage \(key) is listed but never referenced", file: file.path, key: key)
            }
            guard cursor + 8 <= bytes.count else {
                throw ModelError(.invalid, "legacy checkpoint is truncated in storage \(key)", file: file.path, key: key, offset: UInt64(cursor))
            }
            let count = bytes.loadLE(UInt64.self, at: cursor)
            let length = count.multipliedReportingOverflow(by: UInt64(dtype.size))
            guard count == UInt64(expected), !length.overflow, length.partialValue <= UInt64(bytes.count - cursor - 8) else {
                throw ModelError(
                    .invalid, "legacy checkpoint: storage \(key) size is inconsistent or truncated", file: file.path, key: key, offset: UInt64(cursor))
            }
            located[key] = (cursor + 8, Int(length.partialValue))
            cursor += 8 + Int(length.partialValue)
        }
        return (root, { storage in located[storage.key].map { (file: file, offset: $0.0, bytes: $0.1) } })
    }

    // MARK: state dict

    /// Find the weights: top level, or under `state_dict`/`model` as training
    /// checkpoints nest them (A1111 pops `state_dict` the same way).
    private static func locateStateDict(_ root: PickleValue) -> (PickleValue, String?, [(key: String, value: String)]) {
        guard case let .dict(top) = root else { return (root, nil, []) }
        for key in ["state_dict", "model", "module", "params"] {
            if let inner = top[key], case let .dict(dict) = inner, dict.entries.contains(where: { isTensorOrDict($0.value) }) {
                var extras: [(key: String, value: String)] = []
                for entry in top.entries {
                    guard let name = keyString(entry.key), name != key else { continue }
                    if case .dict = entry.value { continue }
                    if case .tensor = entry.value { continue }
                    extras.append((key: name, value: entry.value.summary))
                }
                return (inner, key, extras)
            }
        }
        return (root, nil, [])
    }

    private static func isTensorOrDict(_ value: PickleValue) -> Bool {
        switch value {
        case .tensor, .dict: return true
        default: return false
        }
    }

    private static func keyString(_ key: PickleValue) -> String? {
        switch key {
        case let .string(s): return s
        case let .int(v): return String(v)
        default: return nil
        }
    }

    private static func flatten(_ value: PickleValue, prefix: String, depth: Int,
                                tensors: inout [TensorView], extras: inout [(key: String, value: String)],
                                seen: inout Set<String>,
                                resolve: (PickleStorage) -> (file: MappedFile, offset: Int, bytes: Int)?,
                                file: MappedFile) throws(ModelError) {
        guard case let .dict(dict) = value else {
            if case let .tensor(t) = value {
                tensors.append(try view(t, name: prefix.isEmpty ? "tensor" : prefix, resolve: resolve, file: file))
            }
            return
        }
        // Pickles can hold cycles through the memo; nesting this deep is not a state dict.
        guard depth < 16 else { return }
        for entry in dict.entries {
            guard let key = keyString(entry.key) else { continue }
            let name = prefix.isEmpty ? key : prefix + "." + key
            switch entry.value {
            case let .tensor(t):
                guard seen.insert(name).inserted else {
                    throw ModelError(.invalid, "duplicate tensor name", file: file.path, key: name)
                }
                tensors.append(try view(t, name: name, resolve: resolve, file: file))
            case .dict:
                try flatten(entry.value, prefix: name, depth: depth + 1, tensors: &tensors, extras: &extras, seen: &seen,
                            resolve: resolve, file: file)
            default:
                extras.append((key: name, value: entry.value.summary))
            }
        }
    }

    private static func view(_ t: PickleTensor, name: String,
                             resolve: (PickleStorage) -> (file: MappedFile, offset: Int, bytes: Int)?,
                             file: MappedFile) throws(ModelError) -> TensorView {
        guard let record = resolve(t.storage) else {
            throw ModelError(.invalid, "storage \(t.storage.key) cannot be located", file: file.path, key: name)
        }
        let size = t.dtype.size
        let first = t.storage.viewOffset + t.storageOffset
        let elements = t.shape.reduce(1, *)
        var span = 0
        if elements > 0 {
            span = 1
            for (s, stride) in zip(t.shape, t.strides) { span += (s - 1) * stride }
        }
        let byteOffset = first * size
        guard byteOffset <= record.bytes, span * size <= record.bytes - byteOffset else {
            throw ModelError(.invalid, "tensor data lies outside its storage record", file: file.path, key: name)
        }
        return TensorView(name: name, dtype: t.dtype, shape: t.shape, strides: t.strides,
                          byteOffset: record.offset + byteOffset, byteCount: span * size, file: record.file)
    }
}
