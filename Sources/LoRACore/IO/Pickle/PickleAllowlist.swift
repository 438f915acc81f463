/// The globals a state-dict pickle may name, each mapped to a fixed, inert
/// behaviour. Anything else is refused: this is an allowlist, not a denylist.
public enum PickleGlobal: Sendable, Equatable {
    case orderedDict
    case rebuildTensor        // torch._utils._rebuild_tensor (old)
    case rebuildTensorV2
    case rebuildTensorV3
    case rebuildParameter
    case rebuildParameterWithState
    case storageType(DType?)  // nil = torch.UntypedStorage
    case torchDType(DType?)   // nil = a torch dtype this suite cannot read
    case torchSize
    case torchDevice
    case codecsEncode
    case builtinSet
    case builtinFrozenset
    /// Classes whose instances are recorded as inert data (never constructed).
    case inertClass(String)

    public var qualifiedName: String {
        switch self {
        case .orderedDict: return "collections.OrderedDict"
        case .rebuildTensor: return "torch._utils._rebuild_tensor"
        case .rebuildTensorV2: return "torch._utils._rebuild_tensor_v2"
        case .rebuildTensorV3: return "torch._utils._rebuild_tensor_v3"
        case .rebuildParameter: return "torch._utils._rebuild_parameter"
        case .rebuildParameterWithState: return "torch._utils._rebuild_parameter_with_state"
        case let .storageType(dtype): return "torch.\(dtype.map { "\($0.rawValue)Storage" } ?? "UntypedStorage")"
        case let .torchDType(dtype): return "torch.\(dtype?.shortName ?? "dtype")"
        case .torchSize: return "torch.Size"
        case .torchDevice: return "torch.device"
        case .codecsEncode: return "_codecs.encode"
        case .builtinSet: return "builtins.set"
        case .builtinFrozenset: return "builtins.frozenset"
        case let .inertClass(name): return name
        }
    }

    private static let storages: [String: DType?] = [
        "DoubleStorage": .f64, "FloatStorage": .f32, "HalfStorage": .f16, "BFloat16Storage": .bf16,
        "LongStorage": .i64, "IntStorage": .i32, "ShortStorage": .i16, "CharStorage": .i8,
        "ByteStorage": .u8, "BoolStorage": .bool, "UntypedStorage": nil,
    ]

    private static let dtypes: [String: DType?] = [
        "float64": .f64, "double": .f64, "float32": .f32, "float": .f32, "float16": .f16, "half": .f16,
        "bfloat16": .bf16, "int64": .i64, "long": .i64, "int32": .i32, "int": .i32, "int16": .i16,
        "short": .i16, "int8": .i8, "uint8": .u8, "bool": .bool, "uint16": .u16, "uint32": .u32,
        "uint64": .u64, "float8_e4m3fn": .f8e4m3, "float8_e5m2": .f8e5m2,
        "complex64": nil, "complex128": nil, "float8_e4m3fnuz": nil, "float8_e5m2fnuz": nil,
    ]

    /// Classes A1111's safe unpickler lets through for old SD training
    /// checkpoints; we record their state and never build them.
    private static let inertClasses: Set<String> = [
        "pytorch_lightning.callbacks.model_checkpoint.ModelCheckpoint",
        "numpy.core.multiarray.scalar", "numpy._core.multiarray.scalar",
        "numpy.core.multiarray._reconstruct", "numpy._core.multiarray._reconstruct",
        "numpy.dtype", "numpy.ndarray",
        "torch.nn.modules.container.ParameterDict",
    ]

    /// Resolve `module.name` against the allowlist.
    public static func resolve(module: String, name: String) -> PickleGlobal? {
        switch (module, name) {
        case ("collections", "OrderedDict"): return .orderedDict
        case ("torch._utils", "_rebuild_tensor"): return .rebuildTensor
        case ("torch._utils", "_rebuild_tensor_v2"): return .rebuildTensorV2
        case ("torch._utils", "_rebuild_tensor_v3"): return .rebuildTensorV3
        case ("torch._utils", "_rebuild_parameter"): return .rebuildParameter
        case ("torch._utils", "_rebuild_parameter_with_state"): return .rebuildParameterWithState
        case ("torch", "Size"): return .torchSize
        case ("torch", "device"): return .torchDevice
        case ("_codecs", "encode"): return .codecsEncode
        case ("builtins", "set"), ("__builtin__", "set"): return .builtinSet
        case ("builtins", "frozenset"), ("__builtin__", "frozenset"): return .builtinFrozenset
        default: break
        }
        if module == "torch" || module == "torch.storage" {
            if let dtype = storages[name] { return .storageType(dtype) }
            if let dtype = dtypes[name] { return .torchDType(dtype) }
        }
        let qualified = module + "." + name
        if inertClasses.contains(qualified) { return .inertClass(qualified) }
        return nil
    }

    /// Globals that are known ways to run code, so the report can say
    /// "dangerous" rather than merely "not allowed" (after picklescan's list).
    public static func isKnownDangerous(module: String, name: String) -> Bool {
        let root = module.split(separator: ".").first.map(String.init) ?? module
        let dangerousModules: Set<String> = [
            "os", "posix", "nt", "subprocess", "sys", "socket", "shutil", "runpy", "pickle", "_pickle",
            "pip", "pdb", "pty", "webbrowser", "ctypes", "asyncio", "aiohttp", "venv", "timeit", "cProfile",
            "profile", "pydoc", "httplib", "commands", "bdb", "importlib", "marshal", "code", "codeop",
            "multiprocessing", "requests", "urllib", "http", "ftplib", "smtplib", "telnetlib", "tempfile",
            "cloudpickle", "dill", "types", "inspect", "platform", "signal", "threading", "_thread",
        ]
        if dangerousModules.contains(root) { return true }
        if module == "builtins" || module == "__builtin__" || module == "__builtins__" {
            return ["eval", "exec", "compile", "getattr", "setattr", "delattr", "apply", "open", "breakpoint",
                    "__import__", "globals", "locals", "vars", "input", "execfile", "file", "memoryview"].contains(name)
        }
        if module == "functools" && name == "partial" { return true }
        if (module == "operator" || module == "_operator") && ["attrgetter", "itemgetter", "methodcaller"].contains(name) { return true }
        if module == "pkgutil" || module == "torch.serialization" || module == "torch.hub" { return true }
        if module == "logging" || module == "_io" || module == "io" { return true }
        if module == "numpy.f2py" || module == "numpy.testing" { return true }
        return false
    }
}
