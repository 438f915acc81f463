import ArgumentParser
import LoRACore

extension Severity: ExpressibleByArgument {}

/// `--precision fp16|bf16|fp32` as users write it.
public struct Precision: ExpressibleByArgument, Sendable {
    public let dtype: DType
    public init?(argument: String) {
        switch argument.lowercased() {
        case "fp16", "float16", "half", "f16": dtype = .f16
        case "bf16", "bfloat16": dtype = .bf16
        case "fp32", "float32", "float", "f32", "full": dtype = .f32
        default: return nil
        }
    }
    public static var allValueStrings: [String] { ["fp16", "bf16", "fp32"] }
    public static var defaultCompletionKind: CompletionKind { .list(allValueStrings) }
}

/// A LoRA argument: `path[:ratio][:unet ratio][:te=x][:unet=x][:lbw=preset|list]`.
/// Used as `transform:` so a malformed spec says what is wrong (ArgumentParser
/// shows the thrown message; `ExpressibleByArgument` could only say "invalid").
public func parseLoRASpec(_ text: String) throws -> LoRASpec {
    do {
        return try LoRASpec(parsing: text)
    } catch {
        throw ValidationError(TerminalText.escape(error.message))
    }
}



/// Flags kohya's scripts take that mean nothing different here, so an
/// existing kohya command line runs unchanged: the family (--v2, --sdxl,
/// --v_parameterization) is read from the tensors, and the work runs on the
/// CPU (--device cpu; another device is an error saying so).
public struct KohyaAcceptedFlags: ParsableArguments {
    @Flag(name: .customLong("v2"), help: ArgumentHelp("Accepted for kohya command lines; the family is read from the tensors.", visibility: .hidden))
    public var v2 = false

    @Flag(name: .customLong("sdxl"), help: ArgumentHelp("Accepted for kohya command lines; the family is read from the tensors.", visibility: .hidden))
    public var sdxl = false

    @Flag(
        name: .customLong("v_parameterization"),
        help: ArgumentHelp("Accepted for kohya command lines; v-prediction is read from the file.", visibility: .hidden))
    public var vParameterization = false

    @Option(name: .customLong("device"), help: ArgumentHelp("Accepted for kohya command lines: only cpu.", visibility: .hidden))
    public var device: String?

    public init() {}

    public mutating func validate() throws {
        if let device, device.lowercased() != "cpu" {
            throw ValidationError("--device \(device): LoRA Tools run on the CPU (all cores); drop --device")
        }
    }
}

/// kohya's merge scripts name LoRAs and their ratios in two lists
/// (`--models a.safetensors b.safetensors --ratios 0.8 0.5`).
public struct KohyaLoRAList: ParsableArguments {
    @Option(name: .customLong("models"), parsing: .upToNextOption,
            help: ArgumentHelp("kohya's spelling: LoRA files, with --ratios.", valueName: "path"),
            completion: .file(extensions: ["safetensors", "ckpt", "pt"]))
    public var models: [String] = []

    @Option(
        name: .customLong("ratios"), parsing: .upToNextOption, help: ArgumentHelp("kohya's --ratios: one per --models file (default 1).", valueName: "ratio"))
    public var ratios: [Double] = []

    public init() {}

    public mutating func validate() throws {
        if !ratios.isEmpty && ratios.count != models.count {
            throw ValidationError("--ratios needs one value per --models file (\(models.count) files, \(ratios.count) ratios)")
        }
    }

    public var specs: [LoRASpec] {
        models.enumerated().map { i, path in LoRASpec(path: path, ratio: i < ratios.count ? ratios[i] : 1) }
    }
}

/// Refuses a number option given as NaN (ArgumentParser reads "nan" as a Double): a NaN learning rate, noise
/// offset or weight would train nothing but NaNs. Infinity stays allowed where an option means "no limit".
public func refuseNaN(_ options: [(name: String, value: Double?)]) throws {
    if let bad = options.first(where: { $0.value?.isNaN == true }) { throw ValidationError("\(bad.name) nan: not a number") }
}
