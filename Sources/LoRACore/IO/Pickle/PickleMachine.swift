/// A pickle *interpreter* that knows only what a PyTorch state dict needs.
///
/// It never executes anything: globals resolve only through `PickleGlobal`'s
/// allowlist, and REDUCE/NEWOBJ/BUILD apply fixed behaviours for those markers.
/// A global outside the allowlist is recorded and interpretation continues in a
/// symbolic mode, so the error can list every offending global, as a scanner
/// would. Each opcode consumes at least one byte, so a run always terminates;
/// lengths are checked against the remaining input before anything is allocated,
/// and containers may not nest deeper than `maxDepth`.
public struct PickleMachine {
    /// Far beyond any state dict (a Lightning training checkpoint nests about
    /// 8 levels); a hostile file nesting 50,000 lists in 100 KB is refused.
    public static let maxDepth = 200

    public typealias PersistentLoad = (PickleValue) throws(ModelError) -> PickleValue

    private let bytes: UnsafeRawBufferPointer
    private let path: String
    public private(set) var position: Int
    private let end: Int
    private var stack: [PickleValue] = []
    private var marks: [Int] = []
    private var memo: [UInt64: PickleValue] = [:]
    private let persistentLoad: PersistentLoad
    /// Non-allowlisted globals met so far ("module.name").
    public private(set) var rejected: [String] = []

    public init(bytes: UnsafeRawBufferPointer, start: Int = 0, end: Int? = nil, path: String,
                persistentLoad: @escaping PersistentLoad) {
        self.bytes = bytes
        self.position = start
        self.end = end ?? bytes.count
        self.path = path
        self.persistentLoad = persistentLoad
    }

    // MARK: errors

    private func invalid(_ message: String, at offset: Int? = nil) -> ModelError {
        ModelError(.invalid, "pickle: \(message)", file: path, offset: UInt64(offset ?? position))
    }

    private func refusal() -> ModelError {
        let unique = Array(Set(rejected)).sorted()
        let dangerous = unique.filter { name in
            let parts = name.split(separator: ".")
            return PickleGlobal.isKnownDangerous(module: parts.dropLast().joined(separator: "."), name: String(parts.last ?? ""))
        }
        let list = unique.joined(separator: ", ")
        if !dangerous.isEmpty {
            return ModelError(
                .dangerous,
                "dangerous pickle: it calls \(dangerous.joined(separator: ", ")), which would run code if loaded with torch.load; nothing was executed",
                file: path)
        }
        return ModelError(
            .dangerous, "pickle references \(list), which is not on the allowlist for a state dict; refusing to load it (nothing was executed)", file: path)
    }

    // MARK: reading operands

    private mutating func readByte() throws(ModelError) -> UInt8 {
        guard position < end else { throw invalid("unexpected end of data") }
        defer { position += 1 }
        return bytes[position]
    }

    private mutating func readBytes(_ count: Int) throws(ModelError) -> UnsafeRawBufferPointer {
        guard count >= 0, count <= end - position else {
            throw invalid("length \(count) runs past the end of the pickle")
        }
        defer { position += count }
        return UnsafeRawBufferPointer(rebasing: bytes[position..<(position + count)])
    }

    private mutating func readLE<T: FixedWidthInteger>(_ type: T.Type) throws(ModelError) -> T {
        let raw = try readBytes(MemoryLayout<T>.size)
        return T(littleEndian: raw.loadUnaligned(as: T.self))
    }

    private mutating func readLine() throws(ModelError) -> String {
        let start = position
        while position < end && bytes[position] != 0x0A {
            position += 1
            if position - start > 4096 { throw invalid("text operand too long", at: start) }
        }
        guard position < end else { throw invalid("unterminated text operand", at: start) }
        let line = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<position]), as: UTF8.self)
        position += 1
        return line
    }

    private mutating func readString(length: Int) throws(ModelError) -> String {
        let start = position
        let raw = try readBytes(length)
        guard let text = String(validating: raw, as: UTF8.self) else { throw invalid("string is not UTF-8", at: start) }
        return text
    }

    // MARK: stack

    private mutating func pop() throws(ModelError) -> PickleValue {
        if let mark = marks.last, stack.count <= mark { throw invalid("stack underflow past a mark") }
        guard let value = stack.popLast() else { throw invalid("stack underflow") }
        return value
    }

    private mutating func popMark() throws(ModelError) -> [PickleValue] {
        guard let mark = marks.popLast() else { throw invalid("no mark on the stack") }
        let items = Array(stack[mark...])
        stack.removeSubrange(mark...)
        return items
    }

    private mutating func top() throws(ModelError) -> PickleValue {
        if let mark = marks.last, stack.count <= mark { throw invalid("stack underflow past a mark") }
        guard let value = stack.last else { throw invalid("stack underflow") }
        return value
    }

    /// Records that `container` now holds `children` and refuses nesting past `maxDepth`.
    private func grow(_ container: PickleContainer, with children: [PickleValue], at offset: Int) throws(ModelError) {
        var deepest = 0
        for child in children { deepest = max(deepest, child.depth) }
        container.depth = max(container.depth, deepest + 1)
        guard container.depth <= Self.maxDepth else {
            throw invalid("containers nested more than \(Self.maxDepth) levels deep; a state dict needs a handful", at: offset)
        }
    }

    /// A new container holding `children`, depth-checked.
    private func make(_ value: PickleValue, children: [PickleValue], at offset: Int) throws(ModelError) -> PickleValue {
        if let container = value.container { try grow(container, with: children, at: offset) }
        return value
    }

    private func tuple(_ items: [PickleValue], at offset: Int) throws(ModelError) -> PickleValue {
        try make(.tuple(PickleTuple(items)), children: items, at: offset)
    }

    private func isRejected(_ value: PickleValue) -> Bool {
        if case .rejected = value { return true }
        return false
    }

    // MARK: run

    /// Interpret one pickle up to its STOP opcode and return its value.
    public mutating func run() throws(ModelError) -> PickleValue {
        do {
            while true {
                let opOffset = position
                let op = try readByte()
                if op == UInt8(ascii: ".") { break }
                try step(op, at: opOffset)
            }
        } catch {
            // After a refused global, later failures are consequences of the
            // symbolic values; the refusal is the real finding.
            if !rejected.isEmpty { throw refusal() }
            throw error
        }
        if !rejected.isEmpty { throw refusal() }
        guard stack.count == 1 else { throw invalid("the pickle left \(stack.count) values on the stack") }
        return stack[0]
    }

    private mutating func step(_ op: UInt8, at opOffset: Int) throws(ModelError) {
        switch op {
        // framing and protocol
        case 0x80: _ = try readByte() // PROTO
        case 0x95: _ = try readLE(UInt64.self) // FRAME: a size hint only
        case UInt8(ascii: "("): marks.append(stack.count) // MARK
        case UInt8(ascii: "0"): _ = try pop() // POP
        case UInt8(ascii: "1"): _ = try popMark() // POP_MARK
        case UInt8(ascii: "2"): stack.append(try top()) // DUP

        // scalars
        case UInt8(ascii: "N"): stack.append(.none)
        case 0x88: stack.append(.bool(true))
        case 0x89: stack.append(.bool(false))
        case UInt8(ascii: "J"): stack.append(.int(Int64(try readLE(Int32.self))))
        case UInt8(ascii: "K"): stack.append(.int(Int64(try readByte())))
        case UInt8(ascii: "M"): stack.append(.int(Int64(try readLE(UInt16.self))))
        case 0x8A: stack.append(try readLong(length: Int(try readByte())))
        case 0x8B:
            let length = try readLE(Int32.self)
            guard length >= 0 else { throw invalid("negative LONG4 length") }
            stack.append(try readLong(length: Int(length)))
        case UInt8(ascii: "I"):
            let text = try readLine()
            if text == "00" { stack.append(.bool(false)) } else if text == "01" { stack.append(.bool(true)) } else {
                guard let v = Int64(text) else { throw invalid("bad INT operand", at: opOffset) }
                stack.append(.int(v))
            }
        case UInt8(ascii: "L"):
            var text = try readLine()
            if text.hasSuffix("L") { text.removeLast() }
            stack.append(Int64(text).map { .int($0) } ?? .bigInt(text))
        case UInt8(ascii: "G"):
            // BINFLOAT is the one big-endian operand.
            let raw = try readBytes(8)
            var bits: UInt64 = 0
            for byte in raw { bits = bits << 8 | UInt64(byte) }
            stack.append(.float(Double(bitPattern: bits)))
        case UInt8(ascii: "F"):
            guard let v = Double(try readLine()) else { throw invalid("bad FLOAT operand", at: opOffset) }
            stack.append(.float(v))

        // strings and bytes
        case UInt8(ascii: "X"): stack.append(.string(try readString(length: Int(try readLE(UInt32.self)))))
        case 0x8C: stack.append(.string(try readString(length: Int(try readByte()))))
        case 0x8D:
            let length = try readLE(UInt64.self)
            guard length <= UInt64(end - position) else { throw invalid("string runs past the end") }
            stack.append(.string(try readString(length: Int(length))))
        case UInt8(ascii: "T"):
            let length = try readLE(Int32.self)
            guard length >= 0 else { throw invalid("negative string length") }
            stack.append(.bytes(Array(try readBytes(Int(length)))))
        case UInt8(ascii: "U"): stack.append(.bytes(Array(try readBytes(Int(try readByte())))))
        case UInt8(ascii: "B"): stack.append(.bytes(Array(try readBytes(Int(try readLE(UInt32.self))))))
        case UInt8(ascii: "C"): stack.append(.bytes(Array(try readBytes(Int(try readByte())))))
        case 0x8E, 0x96:
            let length = try readLE(UInt64.self)
            guard length <= UInt64(end - position) else { throw invalid("bytes run past the end") }
            stack.append(.bytes(Array(try readBytes(Int(length)))))
        case UInt8(ascii: "V"):
            let text = try readLine()
            guard !text.contains("\\") else {
                throw ModelError(.unsupported, "pickle: escaped protocol-0 unicode is not supported", file: path, offset: UInt64(opOffset))
            }
            stack.append(.string(text))
        case UInt8(ascii: "S"):
            var text = try readLine()
            guard text.count >= 2, let q = text.first, (q == "'" || q == "\""), text.last == q, !text.contains("\\") else {
                throw ModelError(.unsupported, "pickle: this protocol-0 string form is not supported", file: path, offset: UInt64(opOffset))
            }
            text.removeFirst(); text.removeLast()
            stack.append(.bytes(Array(text.utf8)))

        // containers
        case UInt8(ascii: "}"): stack.append(.dict(PickleDict()))
        case UInt8(ascii: "]"): stack.append(.list(PickleList()))
        case UInt8(ascii: ")"): stack.append(.tuple(PickleTuple()))
        case 0x8F: stack.append(.set(PickleList()))
        case UInt8(ascii: "l"):
            let items = try popMark()
            stack.append(try make(.list(PickleList(items)), children: items, at: opOffset))
        case UInt8(ascii: "t"): stack.append(try tuple(try popMark(), at: opOffset))
        case 0x85: stack.append(try tuple([try pop()], at: opOffset))
        case 0x86:
            let b = try pop(), a = try pop()
            stack.append(try tuple([a, b], at: opOffset))
        case 0x87:
            let c = try pop(), b = try pop(), a = try pop()
            stack.append(try tuple([a, b, c], at: opOffset))
        case UInt8(ascii: "d"):
            let items = try popMark()
            guard items.count % 2 == 0 else { throw invalid("DICT with an odd number of items", at: opOffset) }
            let dict = PickleDict()
            try grow(dict, with: items, at: opOffset)
            for i in stride(from: 0, to: items.count, by: 2) { dict.set(items[i], items[i + 1]) }
            stack.append(.dict(dict))
        case 0x91: // FROZENSET
            let items = try popMark()
            stack.append(try make(.set(PickleList(items)), children: items, at: opOffset))
        case UInt8(ascii: "a"):
            let value = try pop()
            try append([value], at: opOffset)
        case UInt8(ascii: "e"):
            let items = try popMark()
            try append(items, at: opOffset)
        case 0x90: // ADDITEMS
            let items = try popMark()
            let target = try top()
            guard case let .set(set) = target else {
                if isRejected(target) { return }
                throw invalid("ADDITEMS on a non-set", at: opOffset)
            }
            try grow(set, with: items, at: opOffset)
            set.items.append(contentsOf: items)
        case UInt8(ascii: "s"):
            let value = try pop(), key = try pop()
            try setItems([key, value], at: opOffset)
        case UInt8(ascii: "u"):
            let items = try popMark()
            guard items.count % 2 == 0 else { throw invalid("SETITEMS with an odd number of items", at: opOffset) }
            try setItems(items, at: opOffset)

        // memo
        case UInt8(ascii: "q"): memo[UInt64(try readByte())] = try top()
        case UInt8(ascii: "r"): memo[UInt64(try readLE(UInt32.self))] = try top()
        case 0x94: memo[UInt64(memo.count)] = try top() // MEMOIZE
        case UInt8(ascii: "p"):
            guard let index = UInt64(try readLine()) else { throw invalid("bad PUT index", at: opOffset) }
            memo[index] = try top()
        case UInt8(ascii: "h"): try pushMemo(UInt64(try readByte()), at: opOffset)
        case UInt8(ascii: "j"): try pushMemo(UInt64(try readLE(UInt32.self)), at: opOffset)
        case UInt8(ascii: "g"):
            guard let index = UInt64(try readLine()) else { throw invalid("bad GET index", at: opOffset) }
            try pushMemo(index, at: opOffset)

        // globals and the fixed "calls"
        case UInt8(ascii: "c"):
            let module = try readLine()
            let name = try readLine()
            stack.append(resolveGlobal(module: module, name: name))
        case 0x93: // STACK_GLOBAL
            let nameValue = try pop(), moduleValue = try pop()
            guard let module = moduleValue.string, let name = nameValue.string else {
                throw invalid("STACK_GLOBAL operands are not strings", at: opOffset)
            }
            stack.append(resolveGlobal(module: module, name: name))
        case UInt8(ascii: "i"): // INST: a class call in protocol 0
            let module = try readLine()
            let name = try readLine()
            let args = try popMark()
            stack.append(try call(resolveGlobal(module: module, name: name), args, at: opOffset))
        case UInt8(ascii: "o"): // OBJ
            var items = try popMark()
            guard !items.isEmpty else { throw invalid("OBJ without a class", at: opOffset) }
            let callable = items.removeFirst()
            stack.append(try call(callable, items, at: opOffset))
        case UInt8(ascii: "R"): // REDUCE
            let args = try pop(), callable = try pop()
            guard let list = args.sequence else {
                if isRejected(args) || isRejected(callable) { stack.append(.rejected("?")); return }
                throw invalid("REDUCE arguments are not a tuple", at: opOffset)
            }
            stack.append(try call(callable, list, at: opOffset))
        case 0x81: // NEWOBJ
            let args = try pop(), cls = try pop()
            stack.append(try construct(cls, args.sequence ?? [], at: opOffset))
        case 0x92: // NEWOBJ_EX
            _ = try pop() // kwargs
            let args = try pop(), cls = try pop()
            stack.append(try construct(cls, args.sequence ?? [], at: opOffset))
        case UInt8(ascii: "b"): // BUILD
            let state = try pop()
            try build(try top(), state: state, at: opOffset)

        // persistent ids: storages
        case UInt8(ascii: "Q"):
            let pid = try pop()
            stack.append(try loadPersistent(pid, at: opOffset))
        case UInt8(ascii: "P"):
            let text = try readLine()
            stack.append(try loadPersistent(.string(text), at: opOffset))

        case 0x82, 0x83, 0x84:
            throw ModelError(
                .dangerous, "pickle uses the extension registry (EXT opcodes), which can name arbitrary code; refusing", file: path, offset: UInt64(opOffset))
        case 0x97, 0x98:
            throw ModelError(.unsupported, "pickle: out-of-band buffers (protocol 5) are not supported", file: path, offset: UInt64(opOffset))
        default:
            throw invalid("unknown opcode 0x\(String(op, radix: 16))", at: opOffset)
        }
    }

    private mutating func readLong(length: Int) throws(ModelError) -> PickleValue {
        let raw = try readBytes(length)
        if length == 0 { return .int(0) }
        if length <= 8 {
            var value: UInt64 = 0
            for i in 0..<length { value |= UInt64(raw[i]) << (8 * UInt64(i)) }
            if length < 8 && raw[length - 1] & 0x80 != 0 { value |= ~UInt64(0) << (8 * UInt64(length)) }
            return .int(Int64(bitPattern: value))
        }
        // Wider than 64 bits: kept as hex text (the legacy torch magic number is one).
        var digits = ""
        for byte in raw.reversed() {
            let hex = String(byte, radix: 16)
            digits += hex.count == 1 ? "0" + hex : hex
        }
        while digits.hasPrefix("0") && digits.count > 1 { digits.removeFirst() }
        return .bigInt("0x" + digits)
    }

    private mutating func pushMemo(_ index: UInt64, at offset: Int) throws(ModelError) {
        guard let value = memo[index] else { throw invalid("memo entry \(index) was never stored", at: offset) }
        stack.append(value)
    }

    private mutating func resolveGlobal(module: String, name: String) -> PickleValue {
        if let global = PickleGlobal.resolve(module: module, name: name) { return .global(global) }
        rejected.append(module + "." + name)
        return .rejected(module + "." + name)
    }

    private mutating func append(_ items: [PickleValue], at offset: Int) throws(ModelError) {
        let target = try top()
        switch target {
        case let .list(list):
            try grow(list, with: items, at: offset)
            list.items.append(contentsOf: items)
        case .rejected: return
        default: throw invalid("APPEND on a non-list", at: offset)
        }
    }

    private mutating func setItems(_ items: [PickleValue], at offset: Int) throws(ModelError) {
        let target = try top()
        switch target {
        case let .dict(dict):
            try grow(dict, with: items, at: offset)
            for i in stride(from: 0, to: items.count, by: 2) { dict.set(items[i], items[i + 1]) }
        case .rejected: return
        default: throw invalid("SETITEM on a non-dict", at: offset)
        }
    }

    private func construct(_ cls: PickleValue, _ args: [PickleValue], at offset: Int) throws(ModelError) -> PickleValue {
        switch cls {
        case .global(.orderedDict): return .dict(PickleDict())
        case let .global(.inertClass(name)): return try make(.object(PickleObject(className: name, arguments: args)), children: args, at: offset)
        case .global(.builtinSet), .global(.builtinFrozenset):
            let items = args.first?.sequence ?? []
            return try make(.set(PickleList(items)), children: items, at: offset)
        case .rejected: return .rejected("?")
        default: throw invalid("NEWOBJ on \(cls.summary), which cannot be constructed", at: offset)
        }
    }

    private func build(_ target: PickleValue, state: PickleValue, at offset: Int) throws(ModelError) {
        switch target {
        case .dict, .tensor, .rejected:
            return // OrderedDict `_metadata` and tensor attributes carry nothing we use
        case let .object(object):
            try grow(object, with: [state], at: offset)
            object.state = state
        default:
            throw invalid("BUILD on \(target.summary)", at: offset)
        }
    }

    private mutating func loadPersistent(_ pid: PickleValue, at offset: Int) throws(ModelError) -> PickleValue {
        do {
            return try persistentLoad(pid)
        } catch {
            var e = error
            if e.offset == nil { e.offset = UInt64(offset) }
            throw e
        }
    }

    /// The fixed behaviour of each allowlisted callable.
    private func call(_ callable: PickleValue, _ args: [PickleValue], at offset: Int) throws(ModelError) -> PickleValue {
        guard case let .global(global) = callable else {
            if isRejected(callable) { return .rejected("?") }
            throw invalid("call of \(callable.summary), which is not callable", at: offset)
        }
        switch global {
        case .orderedDict:
            let dict = PickleDict()
            try grow(dict, with: args.first?.sequence ?? [], at: offset)
            for pair in args.first?.sequence ?? [] {
                if let kv = pair.sequence, kv.count == 2 { dict.set(kv[0], kv[1]) }
            }
            return .dict(dict)
        case .rebuildTensor, .rebuildTensorV2:
            guard args.count >= 4 else { throw invalid("_rebuild_tensor with \(args.count) arguments", at: offset) }
            return .tensor(try rebuildTensor(storage: args[0], offset: args[1], size: args[2], stride: args[3], dtype: nil, at: offset))
        case .rebuildTensorV3:
            guard args.count >= 7 else { throw invalid("_rebuild_tensor_v3 with \(args.count) arguments", at: offset) }
            guard case let .global(.torchDType(dtype)) = args[6] else { throw invalid("_rebuild_tensor_v3 without a dtype", at: offset) }
            guard let dtype else { throw ModelError(.unsupported, "tensor dtype is not supported", file: path, offset: UInt64(offset)) }
            return .tensor(try rebuildTensor(storage: args[0], offset: args[1], size: args[2], stride: args[3], dtype: dtype, at: offset))
        case .rebuildParameter, .rebuildParameterWithState:
            guard let tensor = args.first, case .tensor = tensor else { throw invalid("_rebuild_parameter without a tensor", at: offset) }
            return tensor
        case .torchSize:
            return try tuple(args.first?.sequence ?? [], at: offset)
        case .torchDevice:
            return .string(args.first?.string ?? "cpu")
        case .codecsEncode:
            // Protocol 2 pickles bytes as _codecs.encode(text, 'latin1').
            guard let text = args.first?.string else { throw invalid("_codecs.encode without text", at: offset) }
            var out: [UInt8] = []
            out.reserveCapacity(text.unicodeScalars.count)
            for scalar in text.unicodeScalars {
                guard scalar.value < 256 else { throw invalid("_codecs.encode of non-latin1 text", at: offset) }
                out.append(UInt8(scalar.value))
            }
            return .bytes(out)
        case .builtinSet, .builtinFrozenset:
            let items = args.first?.sequence ?? []
            return try make(.set(PickleList(items)), children: items, at: offset)
        case let .inertClass(name):
            return try make(.object(PickleObject(className: name, arguments: args)), children: args, at: offset)
        case .storageType, .torchDType:
            throw invalid("\(global.qualifiedName) called directly", at: offset)
        }
    }

    private func rebuildTensor(storage: PickleValue, offset: PickleValue, size: PickleValue, stride: PickleValue,
                               dtype explicitDType: DType?, at position: Int) throws(ModelError) -> PickleTensor {
        guard case let .storage(storage) = storage else { throw invalid("tensor without a storage", at: position) }
        guard let dtype = explicitDType ?? storage.dtype else {
            throw invalid("untyped storage without a dtype", at: position)
        }
        guard let storageOffset = offset.int, storageOffset >= 0, storageOffset < Int64(Int32.max) * 1024,
              let sizes = size.sequence, let strides = stride.sequence, sizes.count == strides.count, sizes.count <= 16 else {
            throw invalid("malformed tensor size/stride", at: position)
        }
        var shape: [Int] = [], steps: [Int] = []
        for (s, t) in zip(sizes, strides) {
            guard let s = s.int, let t = t.int, s >= 0, t >= 0, s < Int64(1) << 40, t < Int64(1) << 40 else {
                throw invalid("negative or huge tensor dimension", at: position)
            }
            shape.append(Int(s))
            steps.append(Int(t))
        }
        // The highest element the view touches must lie inside the storage.
        let capacity = storage.dtype == nil ? storage.count / dtype.size : storage.count
        if !shape.contains(0) {
            var last = Int(storageOffset)
            for (s, t) in zip(shape, steps) {
                let (product, overflow) = (s - 1).multipliedReportingOverflow(by: t)
                guard !overflow else { throw invalid("tensor extent overflows", at: position) }
                last += product
            }
            guard last < capacity else {
                throw invalid("tensor view reaches element \(last) of a storage holding \(capacity)", at: position)
            }
        }
        return PickleTensor(storage: storage, dtype: dtype, storageOffset: Int(storageOffset), shape: shape, strides: steps)
    }
}
