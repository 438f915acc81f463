import ArgumentParser
import ToolSupport
import Foundation
import LoRACore
import Training

/// The LoRA network (sd-scripts networks/lora.py arguments).
struct NetworkOptions: ParsableArguments {
    @Option(name: [.long, .customLong("network_module")],
            help: ArgumentHelp("networks.lora (kohya's LoRA, and LoCon with conv_dim), networks.lora_fa (LoRA-FA: lora_down frozen), or lycoris.kohya "
                               + "with algo=locon, loha, lokr or ia3 (LyCORIS's).",
                               valueName: "module"))
    var networkModule = "networks.lora"

    @Option(name: [.long, .customLong("network_dim")], help: ArgumentHelp("Rank of the attention modules (kohya's default 4).", valueName: "n"))
    var networkDim = 4

    @Option(name: [.long, .customLong("network_alpha")], help: ArgumentHelp("Alpha: the modules are scaled by alpha/dim (kohya's default 1).", valueName: "a"))
    var networkAlpha: Float = 1

    @Option(name: [.long, .customLong("network_args")], parsing: .upToNextOption,
            help: ArgumentHelp("key=value settings: conv_dim=n conv_alpha=a (LoCon: the ResBlock convolutions too), rank_dropout=p, module_dropout=p; "
                               + "with lycoris.kohya: algo=locon|loha|lokr|ia3 preset=full conv_dim conv_alpha rank_dropout module_dropout factor decompose_both use_tucker dora_wd use_scalar train_norm, as the kohya_ss GUI writes them.",
                               valueName: "key=value"))
    var networkArgs: [String] = []

    @Option(name: [.long, .customLong("network_dropout")], help: ArgumentHelp("Neuron dropout on the modules' hidden values (0.1 is common).", valueName: "p"))
    var networkDropout: Double?

    @Flag(name: [.long, .customLong("network_train_unet_only")], help: "Train only the U-Net's modules (the text encoder's are not created).")
    var networkTrainUnetOnly = false

    @Flag(name: [.long, .customLong("network_train_text_encoder_only")], help: "Train only the text encoder's modules.")
    var networkTrainTextEncoderOnly = false

    @Option(name: [.long, .customLong("scale_weight_norms")],
            help: ArgumentHelp("Max-norm regularisation: scale modules whose ΔW norm exceeds this (1 is common), by kohya's rule or, "
                               + "with lycoris.kohya, LyCORIS's.", valueName: "max"))
    var scaleWeightNorms: Double?

    @Option(name: [.long, .customLong("network_weights")],
            help: ArgumentHelp("Start from this LoRA's weights (same modules and dim; a fresh optimizer, as kohya).", valueName: "path"),
            completion: .file(extensions: ["safetensors"]))
    var networkWeights: String?

    @Option(name: [.long, .customLong("base_weights")], parsing: .upToNextOption,
            help: ArgumentHelp("LoRAs merged into the model before training, as lora-merge bakes them (kohya's: the new LoRA learns on top of them).",
                               valueName: "path"), completion: .file(extensions: ["safetensors"]))
    var baseWeights: [String] = []

    @Option(name: [.long, .customLong("base_weights_multiplier")], parsing: .upToNextOption,
            help: ArgumentHelp("One ratio per --base-weights file (default 1).", valueName: "ratio"))
    var baseWeightsMultiplier: [Double] = []

    /// kohya: the i-th file at the i-th multiplier, 1 where there is none.
    var baseLoRAs: [LoRASpec] {
        baseWeights.enumerated().map { i, path in LoRASpec(path: path, ratio: i < baseWeightsMultiplier.count ? baseWeightsMultiplier[i] : 1) }
    }

    @Flag(name: [.long, .customLong("dim_from_weights")],
          help: "Take the modules, ranks and alphas from --network-weights instead of --network-dim/--network-alpha (kohya's).")
    var dimFromWeights = false

    func validate() throws {
        try refuseNaN([("--network-alpha", Double(networkAlpha)), ("--network-dropout", networkDropout), ("--scale-weight-norms", scaleWeightNorms)])
        guard let module = TrainingConfiguration.NetworkModule(rawValue: networkModule) else {
            if networkModule == "networks.dylora" {
                // kohya's DyLoRA updates one rank chunk a step, each with its own optimizer state (a torch parameter per
                // chunk, skipped while its gradient is None); the optimizers here keep one state per tensor.
                throw ValidationError("--network-module networks.dylora is not supported: train networks.lora at the largest rank, then "
                                      + "`lora-extract resize FILE --rank N` (or --dynamic sv_fro=0.95) makes each smaller rank, as kohya's resize_lora.py")
            }
            throw ValidationError("--network-module \(networkModule) is not supported; lora-train trains networks.lora (LoRA, LoCon via conv_dim), "
                                  + "networks.lora_fa (LoRA-FA) and lycoris.kohya with algo=locon, loha, lokr or ia3")
        }
        if baseWeightsMultiplier.count > baseWeights.count {
            throw ValidationError("--base-weights-multiplier has \(baseWeightsMultiplier.count) ratios for \(baseWeights.count) --base-weights files")
        }
        if dimFromWeights && networkWeights == nil { throw ValidationError("--dim-from-weights needs --network-weights (kohya asks the same)") }
        if dimFromWeights && module == .lycoris && lycorisAlgorithm != .locon {
            throw ValidationError("--dim-from-weights with algo=\(lycorisAlgorithm.name) is not supported (with LoCon it is); --network-weights alone "
                                  + "continues from a file with the same settings")
        }
        guard networkDim >= 1 else { throw ValidationError("--network-dim must be at least 1") }
        guard networkAlpha > 0 else { throw ValidationError("--network-alpha must be positive") }
        // 0 is kohya's "off" (`if args.scale_weight_norms:`), and the kohya_ss GUI writes it into every config.
        if let m = scaleWeightNorms, m < 0 { throw ValidationError("--scale-weight-norms must be positive (or 0: off)") }
        if let p = networkDropout, !(0..<1).contains(p) { throw ValidationError("--network-dropout must be a probability below 1") }
        if networkTrainUnetOnly && networkTrainTextEncoderOnly {
            throw ValidationError("--network-train-unet-only and --network-train-text-encoder-only exclude each other")
        }
        _ = try parsedArgs()
    }

    /// conv_dim / conv_alpha / rank_dropout / module_dropout / block_dims / block_alphas / conv_block_dims /
    /// conv_block_alphas from `--network-args`; any other key is an error naming it.
    /// `reportingUnused`: say which LyCORIS settings the chosen algorithm ignores (once, when the run is configured; validate() parses too).
    func parsedArgs(reportingUnused: Bool = false) throws -> (convDim: Int?, convAlpha: Float, rankDropout: Double?, moduleDropout: Double?, blocks: LoRANetwork.BlockDims?,
                                 blockRates: BlockLearningRates?, loraPlus: [String: Double]) {
        if networkModule == TrainingConfiguration.NetworkModule.lycoris.rawValue { return try lycorisArgs(reportingUnused: reportingUnused) }
        var loraPlus: [String: Double] = [:]
        var convDim: Int?, convAlpha: Float = 1, rankDropout: Double?, moduleDropout: Double?
        var lists: [String: [Double]] = [:], rateTexts: [String: String] = [:], zeroThreshold = 0.0
        for item in networkArgs {
            let parts = item.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            guard parts.count == 2 else { throw ValidationError("--network-args \(item): expected key=value") }
            switch parts[0] {
            case "conv_dim":
                guard let v = Int(parts[1]), v >= 1 else { throw ValidationError("--network-args conv_dim=\(parts[1]): a positive integer") }
                convDim = v
            case "conv_alpha":
                guard let v = Float(parts[1]), v > 0 else { throw ValidationError("--network-args conv_alpha=\(parts[1]): a positive number") }
                convAlpha = v
            case "block_dims", "block_alphas", "conv_block_dims", "conv_block_alphas":
                let values = parts[1].split(separator: ",").map { Double($0.trimmingCharacters(in: .whitespaces)) }
                guard values.count == LoRANetwork.BlockDims.count, values.allSatisfy({ ($0 ?? -1) >= 0 }) else {
                    throw ValidationError("--network-args \(parts[0]) takes \(LoRANetwork.BlockDims.count) comma-separated values for SD1/SD2 "
                                          + "(kohya's blocks: 0 unused, down 1–11, mid 12, up 13–24); \(values.count) given")
                }
                lists[parts[0]] = values.map { $0! }
            case "down_lr_weight", "mid_lr_weight", "up_lr_weight":
                rateTexts[parts[0]] = parts[1]
            case "loraplus_lr_ratio", "loraplus_unet_lr_ratio", "loraplus_text_encoder_lr_ratio":
                guard let v = Double(parts[1]), v > 0 else { throw ValidationError("--network-args \(item): a positive ratio") }
                loraPlus[parts[0]] = v
            case "block_lr_zero_threshold":
                guard let v = Double(parts[1]) else { throw ValidationError("--network-args \(item): a number") }
                zeroThreshold = v
            case "rank_dropout", "module_dropout":
                guard let v = Double(parts[1]), (0..<1).contains(v) else { throw ValidationError("--network-args \(item): a probability below 1") }
                if parts[0] == "rank_dropout" { rankDropout = v } else { moduleDropout = v }
            case let key where Self.lycorisOnlyArguments.contains(key):
                // kohya's networks.lora reads the arguments it knows and drops the rest: algo=loha there trains a plain LoRA.
                throw ValidationError("--network-args \(item) is LyCORIS's: give --network-module lycoris.kohya to train it "
                                      + "(kohya's networks.lora ignores it and trains a plain LoRA)")
            default:
                throw ValidationError("--network-args \(parts[0]) is not supported yet (conv_dim, conv_alpha, rank_dropout, module_dropout, "
                                      + "block_dims, block_alphas, conv_block_dims, conv_block_alphas, down/mid/up_lr_weight, block_lr_zero_threshold, "
                                      + "loraplus_lr_ratio, loraplus_unet_lr_ratio, loraplus_text_encoder_lr_ratio are)")
            }
        }
        var blocks: LoRANetwork.BlockDims?
        if let dims = lists["block_dims"] {
            // kohya's get_block_dims_and_alphas: alphas default to network_alpha, conv blocks to conv_dim/conv_alpha when given.
            let convDims = lists["conv_block_dims"].map { $0.map { Int($0) } } ?? convDim.map { [Int](repeating: $0, count: LoRANetwork.BlockDims.count) }
            let convAlphas = lists["conv_block_alphas"].map { $0.map { Float($0) } }
                ?? convDims.map { _ in [Float](repeating: convAlpha, count: LoRANetwork.BlockDims.count) }
            blocks = LoRANetwork.BlockDims(dims: dims.map { Int($0) }, alphas: lists["block_alphas"]?.map { Float($0) }
                                               ?? [Float](repeating: networkAlpha, count: LoRANetwork.BlockDims.count),
                                           convDims: convDims, convAlphas: convAlphas)
        } else if !lists.isEmpty {
            throw ValidationError("--network-args \(lists.keys.sorted().joined(separator: ", ")) need block_dims (as in kohya)")
        }
        if networkModule == TrainingConfiguration.NetworkModule.loraFA.rawValue && !loraPlus.isEmpty {
            // networks/lora_fa.py's create_network reads none of them (its optimizer groups have no LoRA+ split).
            if reportingUnused {
                printError("note: --network-args \(loraPlus.keys.sorted().joined(separator: ", ")): networks.lora_fa does not read LoRA+ ratios "
                           + "(and trains lora_up alone), so they change nothing (as in kohya)")
            }
            loraPlus = [:]
        }
        let blockRates: BlockLearningRates?
        do {
            blockRates = try BlockLearningRates.parse(down: rateTexts["down_lr_weight"], mid: rateTexts["mid_lr_weight"], up: rateTexts["up_lr_weight"],
                                                      zeroThreshold: zeroThreshold)
        } catch { throw ValidationError("--network-args " + error.message) }
        return (convDim, convAlpha, rankDropout, moduleDropout, blocks, blockRates, loraPlus)
    }

    /// lycoris.kohya's `preset=` (its default: full).
    var lycorisPreset: LyCORISPreset {
        networkArgs.lazy.compactMap { item -> LyCORISPreset? in
            let parts = item.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            return parts.count == 2 && parts[0] == "preset" ? LyCORISPreset(rawValue: parts[1].trimmingCharacters(in: CharacterSet(charactersIn: "\"'"))) : nil
        }.last ?? .full
    }

    /// lycoris.kohya's `algo=` (its default: lora, which is LoCon) with the LoKr settings it reads. LyCORIS passes
    /// `decompose_both` to LokrModule as the string kohya split off the argument, so any non-empty value, "False" too, is
    /// true there (the kohya_ss GUI always writes decompose_both=False); `full_matrix` goes through its str_bool
    /// ("false" in any case is false). Values are checked in `lycorisArgs`.
    var lycorisAlgorithm: LyCORISAlgorithm {
        var values: [String: String] = [:]
        for item in networkArgs {
            let parts = item.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            if parts.count == 2 { values[parts[0]] = parts[1].trimmingCharacters(in: CharacterSet(charactersIn: "\"'")) }
        }
        switch values["algo"]?.lowercased() {
        case "loha": return .loha
        case "ia3": return .ia3
        case "lokr":
            return .lokr(factor: values["factor"].flatMap { Int($0) } ?? -1, decomposeBoth: !(values["decompose_both"] ?? "").isEmpty,
                         fullMatrix: (values["full_matrix"] ?? "false").lowercased() != "false",
                         unbalanced: (values["unbalanced_factorization"] ?? "false").lowercased() != "false")
        default: return .locon
        }
    }

    /// A LyCORIS switch read as its str_bool reads it (anything but "false", any case, is true; the last one given counts).
    private func lycorisSwitch(_ key: String) -> Bool {
        networkArgs.reversed().lazy.compactMap { item -> String? in
            let parts = item.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            return parts.count == 2 && parts[0] == key ? parts[1].trimmingCharacters(in: CharacterSet(charactersIn: "\"'")) : nil
        }.first.map { $0.lowercased() != "false" } ?? false
    }

    /// train_norm (kohya.py create_network reads it with str_bool).
    var lycorisTrainNorm: Bool { lycorisSwitch("train_norm") }

    /// dora_wd, LyCORIS's weight decomposition (str_bool too).
    var lycorisDoRA: Bool { lycorisSwitch("dora_wd") }

    /// use_scalar, LyCORIS's trained per-module scalar (str_bool too).
    var lycorisTrainedScalar: Bool { lycorisSwitch("use_scalar") }

    /// LyCORIS's Tucker switch (kohya.py create_network): `not disable_conv_cp or use_conv_cp or use_cp or use_tucker`
    /// over the strings as given, so the first of use_conv_cp, use_cp, use_tucker that is present decides through
    /// str_bool (use_cp=False before use_tucker=True means no Tucker), and disable_conv_cp= (empty) turns it on.
    var lycorisTucker: Bool {
        var values: [String: String] = [:]
        for item in networkArgs {
            let parts = item.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            if parts.count == 2 { values[parts[0]] = parts[1].trimmingCharacters(in: CharacterSet(charactersIn: "\"'")) }
        }
        if values["disable_conv_cp"] == "" { return true }
        guard let first = ["use_conv_cp", "use_cp", "use_tucker"].lazy.compactMap({ values[$0] }).first(where: { !$0.isEmpty }) else { return false }
        return first.lowercased() != "false"
    }

    /// Arguments only LyCORIS's network reads (its lycoris.kohya create_network), which a networks.lora run refuses with a pointer.
    static let lycorisOnlyArguments: Set<String> = ["algo", "preset", "factor", "decompose_both", "full_matrix", "unbalanced_factorization",
                                                     "use_tucker", "use_cp", "use_conv_cp", "disable_conv_cp", "use_scalar", "dora_wd",
                                                     "train_norm", "bypass_mode", "rs_lora", "constraint", "rescaled", "block_size",
                                                     "wd_on_output", "train_on_input", "rank_dropout_scale", "dropout"]

    /// lycoris.kohya's `--network-args` (lycoris_lora 3.2's create_network) as the kohya_ss GUI writes them for
    /// "LyCORIS/LoCon", "LyCORIS/LoHa" and "LyCORIS/LoKr": algo=locon (or lora), loha or lokr, preset (`LyCORISPreset`),
    /// conv_dim / conv_alpha (defaults: the network's; conv_dim=0 leaves the wider convolutions out), module_dropout, LoRA+
    /// ratios, LoKr's factor / decompose_both / full_matrix, and its switches at their defaults. Settings of algorithms
    /// not chosen are accepted and named as unused, as LyCORIS passes them by; anything else is an error.
    func lycorisArgs(reportingUnused: Bool) throws -> (convDim: Int?, convAlpha: Float, rankDropout: Double?, moduleDropout: Double?, blocks: LoRANetwork.BlockDims?,
                                  blockRates: BlockLearningRates?, loraPlus: [String: Double]) {
        var convDim = networkDim, convAlpha = networkAlpha, rankDropout: Double?, moduleDropout: Double?, loraPlus: [String: Double] = [:], unused: [String] = []
        var droppedByLyCORIS: [String] = [], bypass = false, outputDropout = false, rescaled = false
        // LyCORIS's str_bool: only "false" (any case) is false.
        func off(_ value: String) -> Bool { value.lowercased().trimmingCharacters(in: CharacterSet(charactersIn: "\"'")) == "false" }
        let algorithm = lycorisAlgorithm
        let isLoKr: Bool = { if case .lokr = algorithm { return true } else { return false } }()
        for item in networkArgs {
            let parts = item.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            guard parts.count == 2 else { throw ValidationError("--network-args \(item): expected key=value") }
            let (key, value) = (parts[0], parts[1].trimmingCharacters(in: CharacterSet(charactersIn: "\"'")))
            switch key {
            case "algo":
                guard ["locon", "lora", "loha", "lokr", "ia3"].contains(value.lowercased()) else {
                    throw ValidationError("--network-args algo=\(value): lycoris.kohya trains algo=locon, loha, lokr and ia3 here (DyLoRA, GLoRA, OFT, "
                                          + "BOFT and full are not built)")
                }
            case "preset":
                guard LyCORISPreset(rawValue: value) != nil else {
                    throw ValidationError("--network-args preset=\(value): LyCORIS's \(LyCORISPreset.allCases.map(\.rawValue).joined(separator: ", ")) are built "
                                          + "(a preset file is not read)")
                }
            case "conv_dim":
                guard let v = Int(value), v >= 0 else { throw ValidationError("--network-args conv_dim=\(value): a whole number (0: no wider convolutions)") }
                convDim = v
            case "conv_alpha":
                guard let v = Float(value), v >= 0 else { throw ValidationError("--network-args conv_alpha=\(value): a number") }
                convAlpha = v
            case "module_dropout":
                guard let v = Double(value), (0..<1).contains(v) else { throw ValidationError("--network-args \(item): a probability below 1") }
                moduleDropout = v > 0 ? v : nil
            case "rank_dropout":
                // LyCORIS's rank dropout drops rows of the weight change, not kohya's rank channels (LoRADropout.rowMask).
                guard let v = Double(value), (0..<1).contains(v) else { throw ValidationError("--network-args \(item): a probability below 1") }
                rankDropout = v > 0 ? v : nil
            case "dropout":
                // LyCORIS's dropout of the module's output, which its modules apply in bypass_mode only.
                guard let v = Double(value), (0..<1).contains(v) else { throw ValidationError("--network-args \(item): a probability below 1") }
                outputDropout = v > 0
            case "train_norm":
                break   // lycorisTrainNorm
            case "dora_wd", "use_scalar":
                break   // lycorisDoRA, lycorisTrainedScalar
            case "rs_lora":
                // LyCORIS scales by alpha/√rank with it but saves alpha, which every loader reads as alpha/rank.
                guard off(value) else {
                    throw ValidationError("--network-args rs_lora=\(value) is not supported: LyCORIS would train at alpha/√rank and save alpha, which "
                                          + "A1111, ComfyUI and kohya read as alpha/rank, so the file would not render as it trained")
                }
            case "train_t5xxl":
                guard off(value) else { throw ValidationError("--network-args \(key)=\(value) with lycoris.kohya is not supported (False is)") }
            case "use_tucker", "use_cp", "use_conv_cp", "disable_conv_cp":
                break   // lycorisTucker
            case "bypass_mode":
                bypass = !off(value)   // the same sums in another order, but for the dropouts and DoRA (below)
            case "rank_dropout_scale":
                rescaled = !off(value)
            case "factor" where isLoKr:
                guard let v = Int(value), v == -1 || v >= 1 else { throw ValidationError("--network-args factor=\(value): a whole number, -1 or at least 1") }
            case "full_matrix" where isLoKr, "decompose_both" where isLoKr, "unbalanced_factorization" where isLoKr:
                break   // lycorisAlgorithm
            case "factor", "decompose_both", "block_size", "constraint", "rescaled", "full_matrix", "unbalanced_factorization", "wd_on_output":
                unused.append(key)   // other algorithms' settings, which the chosen one does not read either
            case "train_on_input":
                // The GUI writes it for iA3, but create_network does not hand it to LyCORIS's modules (only LyCORIS's
                // own ia3 preset sets it), so every (IA)^3 module scales its outputs.
                droppedByLyCORIS.append(key)
            case "loraplus_lr_ratio", "loraplus_unet_lr_ratio", "loraplus_text_encoder_lr_ratio":
                guard let v = Double(value), v > 0 else { throw ValidationError("--network-args \(item): a positive ratio") }
                loraPlus[key] = v
            default:
                throw ValidationError("--network-args \(key) is not supported with lycoris.kohya (algo, preset, conv_dim, conv_alpha, module_dropout, "
                                      + "loraplus ratios, and LyCORIS's switches at their defaults are)")
            }
        }
        if bypass, rankDropout != nil || outputDropout || lycorisDoRA {
            // LyCORIS's bypass forward (lycoris/modules/*.py bypass_forward_diff) drops LoCon's rank channels (over the
            // whole batch) but LoHa's ΔW rows and nothing of LoKr's, applies `dropout` to the output, and leaves dora_wd's
            // decomposition out while the file keeps dora_scale: not what the rest of LyCORIS does, and not built.
            let what = [rankDropout != nil ? "rank_dropout" : nil, outputDropout ? "dropout" : nil, lycorisDoRA ? "dora_wd" : nil].compactMap { $0 }
            throw ValidationError("--network-args bypass_mode=True with \(what.joined(separator: " and ")) is not supported: LyCORIS's bypass forward "
                                  + "handles them differently from its usual one (and leaves DoRA out of training); drop bypass_mode, which "
                                  + "otherwise changes nothing")
        }
        if reportingUnused, outputDropout {
            printError("note: --network-args dropout: LyCORIS's modules apply it in bypass_mode only, so it changes nothing (as in LyCORIS)")
        }
        if reportingUnused, rescaled, rankDropout != nil {
            printError("note: --network-args rank_dropout_scale: lycoris.kohya's create_network does not pass it to its modules, so the kept rows "
                       + "of ΔW are not rescaled (as in kohya with LyCORIS)")
        }
        if reportingUnused, rankDropout != nil, algorithm == .ia3 {
            printError("note: --network-args rank_dropout: LyCORIS's IA3Module has no rank dropout, so it changes nothing for it (as in LyCORIS)")
        }
        if reportingUnused, let p = rankDropout, lycorisTrainNorm {
            printError("note: --network-args rank_dropout with train_norm: LyCORIS 3.2.0.post2's NormModule keeps a channel's offsets where "
                       + "rand < p (with p = \(formatNumber(p)), \(formatNumber(1 - p)) of them dropped); lora-train drops them with probability p, "
                       + "as LyCORIS's other modules drop their rows")
        }
        if reportingUnused, rankDropout != nil, let m = scaleWeightNorms, m > 0, algorithm != .ia3 {
            printError("note: --scale-weight-norms with rank_dropout: LyCORIS's max-norm measures a ΔW with freshly dropped rows (its modules are "
                       + "in training mode); lora-train measures the whole ΔW, the one the file holds")
        }
        if reportingUnused, let p = networkDropout, p > 0 {
            printError("note: --network-dropout: kohya hands it to lycoris.kohya as neuron_dropout, which LyCORIS's create_network does not read, "
                       + "so it changes nothing (as in kohya with LyCORIS; network_args dropout=… is LyCORIS's own, and is not built)")
        }
        if reportingUnused, algorithm == .loha, lycorisTucker {
            printError("note: use_tucker: LyCORIS's HadaWeightTucker.backward (lycoris_lora 3.2.0.post2) builds the Tucker modules' hada_w1_a and "
                       + "hada_w2_a gradients from the other product's core; lora-train uses the exact gradient, so its run differs from kohya's there")
        }
        if reportingUnused, algorithm == .ia3, lycorisDoRA {
            printError("note: dora_wd: LyCORIS's IA3Module takes no weight decomposition, so it changes nothing (as in LyCORIS)")
        }
        if reportingUnused, algorithm == .ia3, lycorisTrainedScalar {
            printError("note: use_scalar: LyCORIS's IA3Module has no scalar, so it changes nothing (as in LyCORIS)")
        }
        if reportingUnused, algorithm == .ia3, let m = scaleWeightNorms, m > 0 {
            printError("note: --scale-weight-norms: LyCORIS's (IA)^3 modules have no max-norm rule, so it changes nothing (as in LyCORIS)")
        }
        if reportingUnused && !droppedByLyCORIS.isEmpty {
            printError("note: --network-args \(droppedByLyCORIS.joined(separator: ", ")): lycoris.kohya's create_network does not pass it to its "
                       + "modules, so it changes nothing (as in LyCORIS)")
        }
        if reportingUnused && !unused.isEmpty {
            printError("note: --network-args \(unused.joined(separator: ", ")): settings of other LyCORIS algorithms, unused by \(algorithm.name) (as in LyCORIS)")
        }
        return (convDim, convAlpha, rankDropout, moduleDropout, nil, nil, loraPlus)
    }
}
