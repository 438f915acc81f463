import Foundation

/// kohya's `--optimizer_type` and `--optimizer_args` (library/train_util.py
/// `get_optimizer`): the name (case-insensitive) picks the optimizer, the
/// `key=value` arguments (Python literal spellings: `betas=0.9,0.99`,
/// `decouple=True`) set what that optimizer's constructor takes; any other
/// key is an error naming it. kohya's defaults apply where nothing is given
/// (SGDNesterov's momentum 0.9; Adafactor's relative_step on). AdamW8bit trains as fp32 AdamW, and bitsandbytes'
/// other 8-bit and paged forms as theirs (`bitsandbytesForms`): the 8-bit state saves memory on GPUs and nothing on a
/// CPU LoRA run.
public enum OptimizerChoice: String, CaseIterable, Sendable {
    case adamW = "AdamW", adamW8bit = "AdamW8bit", lion = "Lion", sgdNesterov = "SGDNesterov", prodigy = "Prodigy", dAdaptAdam = "DAdaptAdam"
    case adafactor = "Adafactor", dAdaptLion = "DAdaptLion", dAdaptSGD = "DAdaptSGD", dAdaptAdaGrad = "DAdaptAdaGrad"
    /// kohya's "DAdaptation": dadaptation's experimental DAdaptAdamPreprint (also accepted under that name).
    case dAdaptation = "DAdaptation"
    case dAdaptAdan = "DAdaptAdan", dAdaptAdanIP = "DAdaptAdanIP"
    /// schedulefree's (`ScheduleFree`): no --lr_scheduler, a warmup of their own (`warmup_steps=`).
    case adamWScheduleFree = "AdamWScheduleFree", rAdamScheduleFree = "RAdamScheduleFree", sgdScheduleFree = "SGDScheduleFree"
    /// The kohya_ss GUI's module-path optimizers (kohya's get_optimizer imports the module and calls the class):
    /// CAME from pytorch-optimizer or from its authors' came_pytorch, and bitsandbytes' AdEMAMix (its 8-bit and paged
    /// forms train as it, `bitsandbytesForms`).
    case came = "pytorch_optimizer.CAME", camePytorch = "came_pytorch.CAME", adEMAMix = "bitsandbytes.optim.AdEMAMix"
    /// prodigy-plus-schedule-free's: schedule-free as schedulefree's are (kohya tells them by the name's ending).
    case prodigyPlusScheduleFree = "prodigyplus.ProdigyPlusScheduleFree"

    public init?(kohyaName: String) {
        let name = kohyaName.lowercased() == "dadaptadampreprint" ? "dadaptation" : kohyaName.lowercased()
        if let form = Self.bitsandbytesForms[name] {
            self = form
            return
        }
        guard let match = OptimizerChoice.allCases.first(where: { $0.rawValue.lowercased() == name }) else { return nil }
        self = match
    }

    /// bitsandbytes' 8-bit and paged forms kohya loads (train_util.py get_optimizer), by lower-cased name: their states
    /// save GPU memory and change nothing else a CPU run needs, so they train as the fp32 optimizer of the same update and
    /// defaults, as AdamW8bit does (lora-train says so). AdEMAMix's come by module path (the kohya_ss GUI's), or by the
    /// bare names kohya's --optimizer_type help lists (where kohya itself looks them up in torch.optim and fails).
    public static let bitsandbytesForms: [String: OptimizerChoice] = {
        var forms: [String: OptimizerChoice] = [
            "pagedadamw": .adamW, "pagedadamw8bit": .adamW, "pagedadamw32bit": .adamW, "lion8bit": .lion, "pagedlion8bit": .lion,
            "sgdnesterov8bit": .sgdNesterov, "ademamix8bit": .adEMAMix, "pagedademamix8bit": .adEMAMix,
        ]
        for name in ["ademamix8bit", "pagedademamix8bit", "ademamix32bit", "pagedademamix", "pagedademamix32bit"] {
            forms["bitsandbytes.optim." + name] = .adEMAMix
        }
        return forms
    }()

    /// kohya's is_schedulefree_optimizer (the name ends in "schedulefree"): a dummy scheduler, eval() and train().
    public var isScheduleFree: Bool { rawValue.lowercased().hasSuffix("schedulefree") }

    /// Whether one rate must serve every group (D-Adaptation, Prodigy).
    public var adaptive: Bool { [.prodigy, .dAdaptAdam, .dAdaptLion, .dAdaptSGD, .dAdaptAdaGrad, .dAdaptation, .dAdaptAdan, .dAdaptAdanIP].contains(self) }

    /// Adafactor with its relative step on (kohya's default for it; only `relative_step=False` turns it off).
    public func usesRelativeStep(arguments: [String]) -> Bool {
        self == .adafactor && !arguments.contains { $0.replacingOccurrences(of: " ", with: "").lowercased() == "relative_step=false" }
    }

    /// ProdigyPlusScheduleFree's experimental switches (and fused_back_pass, which makes its step() do nothing
    /// unless kohya's fused backward pass drives it, which kohya allows for Adafactor only).
    static let prodigyPlusOff = ["use_speed", "use_muon_pp", "use_cautious", "use_grams", "use_adopt", "use_orthograd", "use_focus", "fused_back_pass"]

    public func make(arguments: [String]) throws(OptimizerError) -> any Optimizer {
        var values: [String: [Double]] = [:], flags: [String: Bool] = [:], nones: Set<String> = []
        for item in arguments {
            let parts = item.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            guard parts.count == 2 else { throw OptimizerError("--optimizer-args \(item): expected key=value") }
            switch parts[1].lowercased() {
            case "true": flags[parts[0]] = true
            case "false": flags[parts[0]] = false
            case "none" where self == .prodigyPlusScheduleFree && ["eps", "beta3"].contains(parts[0]): nones.insert(parts[0])
            default:
                let numbers = parts[1].trimmingCharacters(in: CharacterSet(charactersIn: "()[] ")).split(separator: ",").map {
                    Double($0.trimmingCharacters(in: .whitespaces).replacingOccurrences(of: "inf", with: "infinity"))
                }
                guard !numbers.isEmpty, numbers.allSatisfy({ $0 != nil && !$0!.isNaN }) else { throw OptimizerError("--optimizer-args \(item): not a number") }
                values[parts[0]] = numbers.map { $0! }
            }
        }
        let known: Set<String>
        switch self {
        case .adamW, .adamW8bit: known = ["weight_decay", "betas", "eps"]
        case .lion: known = ["weight_decay", "betas"]
        case .sgdNesterov: known = ["weight_decay", "momentum"]
        case .prodigy: known = ["weight_decay", "betas", "beta3", "eps", "decouple", "use_bias_correction", "safeguard_warmup", "d0", "d_coef", "growth_rate"]
        case .dAdaptAdam: known = ["weight_decay", "betas", "eps", "decouple", "use_bias_correction", "d0", "growth_rate"]
        case .dAdaptLion: known = ["weight_decay", "betas", "d0"]
        case .dAdaptSGD: known = ["weight_decay", "momentum", "d0", "growth_rate"]
        case .dAdaptAdaGrad: known = ["weight_decay", "momentum", "eps", "d0", "growth_rate"]
        case .dAdaptation: known = ["weight_decay", "betas", "eps", "decouple", "d0", "growth_rate"]
        case .dAdaptAdan, .dAdaptAdanIP: known = ["weight_decay", "betas", "eps", "no_prox", "d0", "growth_rate"]
        case .adafactor: known = ["weight_decay", "eps", "clip_threshold", "decay_rate", "beta1", "scale_parameter", "relative_step", "warmup_init"]
        case .adamWScheduleFree: known = ["weight_decay", "betas", "eps", "warmup_steps", "r", "weight_lr_power"]
        case .sgdScheduleFree: known = ["weight_decay", "momentum", "warmup_steps", "r", "weight_lr_power"]
        case .rAdamScheduleFree: known = ["weight_decay", "betas", "eps", "r", "weight_lr_power", "silent_sgd_phase"]
        case .came: known = ["weight_decay", "betas", "eps1", "eps2", "clip_threshold", "weight_decouple", "fixed_decay", "ams_bound"]
        case .camePytorch: known = ["weight_decay", "betas", "eps", "clip_threshold"]
        // min_8bit_size and is_paged only place an 8-bit state, which is fp32 here.
        case .adEMAMix: known = ["weight_decay", "betas", "eps", "alpha", "t_alpha", "t_beta3", "min_8bit_size", "is_paged"]
        case .prodigyPlusScheduleFree:
            // factored_fp32 and stochastic_rounding concern bf16 weights (lora-train trains fp32 ones); the package's
            // experimental switches and fused_back_pass are accepted only off.
            known = Set(["weight_decay", "betas", "beta3", "eps", "weight_decay_by_lr", "use_bias_correction", "d0", "d_coef", "prodigy_steps",
                         "split_groups", "split_groups_mean", "factored", "factored_fp32", "use_stableadamw", "stochastic_rounding"]
                        + Self.prodigyPlusOff)
            if let on = Self.prodigyPlusOff.first(where: { flags[$0] == true }) {
                throw OptimizerError("--optimizer-args \(on)=True is not supported for ProdigyPlusScheduleFree (its default, False, is)")
            }
        }
        if let bad = (Array(values.keys) + Array(flags.keys) + Array(nones)).sorted().first(where: { !known.contains($0) }) {
            throw OptimizerError("--optimizer-args \(bad) is not an argument of \(rawValue) here (\(known.sorted().joined(separator: ", ")))")
        }
        func one(_ key: String, _ fallback: Double) throws(OptimizerError) -> Double {
            guard let v = values[key] else { return fallback }
            guard v.count == 1 else { throw OptimizerError("--optimizer-args \(key) takes one number") }
            return v[0]
        }
        // Adafactor's and came_pytorch's eps is a pair; the others take one number.
        if self != .adafactor && self != .camePytorch, let eps = values["eps"], eps.count != 1 { throw OptimizerError("--optimizer-args eps takes one number") }
        func pair(_ fallback: (Double, Double)) throws(OptimizerError) -> (Double, Double) {
            guard let v = values["betas"] else { return fallback }
            guard v.count == 2 else { throw OptimizerError("--optimizer-args betas takes two numbers, e.g. betas=0.9,0.999") }
            return (v[0], v[1])
        }
        /// β1, β2, β3 (DAdaptAdan's, CAME's, AdEMAMix's).
        func triple(_ fallback: (Double, Double, Double), example: String) throws(OptimizerError) -> (Double, Double, Double) {
            guard let v = values["betas"] else { return fallback }
            guard v.count == 3 else { throw OptimizerError("--optimizer-args betas takes three numbers for \(rawValue), e.g. betas=\(example)") }
            return (v[0], v[1], v[2])
        }
        func steps(_ key: String) throws(OptimizerError) -> Int? {
            guard values[key] != nil else { return nil }
            let v = try one(key, 0)
            guard v >= 1, v == v.rounded(), v < 1e9 else { throw OptimizerError("--optimizer-args \(key) takes a whole number of steps") }
            return Int(v)
        }
        switch self {
        case .adamW, .adamW8bit:
            let (b1, b2) = try pair((0.9, 0.999))
            return AdamW(beta1: b1, beta2: b2, epsilon: try one("eps", 1e-8), weightDecay: try one("weight_decay", 0.01))
        case .lion:
            let (b1, b2) = try pair((0.9, 0.99))
            return Lion(beta1: b1, beta2: b2, weightDecay: try one("weight_decay", 0))
        case .sgdNesterov:
            return SGDNesterov(momentum: try one("momentum", 0.9), weightDecay: try one("weight_decay", 0))
        case .prodigy:
            var o = Prodigy()
            (o.beta1, o.beta2) = try pair((0.9, 0.999))
            o.beta3 = values["beta3"].map { $0[0] }
            (o.epsilon, o.weightDecay) = (try one("eps", 1e-8), try one("weight_decay", 0))
            (o.decouple, o.useBiasCorrection, o.safeguardWarmup) = (flags["decouple"] ?? true, flags["use_bias_correction"] ?? false,
                                                                    flags["safeguard_warmup"] ?? false)
            (o.dCoefficient, o.growthRate) = (try one("d_coef", 1), try one("growth_rate", .infinity))
            o.d0 = try one("d0", 1e-6)
            return o
        case .adafactor:
            var o = Adafactor()
            // kohya turns relative_step on unless the arguments say otherwise.
            (o.relativeStep, o.scaleParameter, o.warmupInit) = (flags["relative_step"] ?? true, flags["scale_parameter"] ?? true, flags["warmup_init"] ?? false)
            if o.warmupInit { o.relativeStep = true }
            if let eps = values["eps"] {
                guard eps.count == 2 else { throw OptimizerError("--optimizer-args eps takes two numbers for Adafactor, e.g. eps=1e-30,1e-3") }
                (o.eps1, o.eps2) = (eps[0], eps[1])
            }
            (o.clipThreshold, o.decayRate, o.weightDecay) = (try one("clip_threshold", 1), try one("decay_rate", -0.8), try one("weight_decay", 0))
            o.beta1 = values["beta1"].map { $0[0] }
            return o
        case .dAdaptAdam:
            var o = DAdaptAdam()
            (o.beta1, o.beta2) = try pair((0.9, 0.999))
            (o.epsilon, o.weightDecay) = (try one("eps", 1e-8), try one("weight_decay", 0))
            (o.decouple, o.useBiasCorrection) = (flags["decouple"] ?? false, flags["use_bias_correction"] ?? false)
            o.growthRate = try one("growth_rate", .infinity)
            o.d0 = try one("d0", 1e-6)
            return o
        case .dAdaptLion:
            var o = DAdaptLion()
            (o.beta1, o.beta2) = try pair((0.9, 0.99))
            o.weightDecay = try one("weight_decay", 0)
            o.d0 = try one("d0", 1e-6)
            return o
        case .dAdaptSGD:
            var o = DAdaptSGD()
            (o.momentum, o.weightDecay, o.growthRate) = (try one("momentum", 0), try one("weight_decay", 0), try one("growth_rate", .infinity))
            o.d0 = try one("d0", 1e-6)
            return o
        case .dAdaptAdaGrad:
            var o = DAdaptAdaGrad()
            (o.momentum, o.weightDecay, o.epsilon) = (try one("momentum", 0), try one("weight_decay", 0), try one("eps", 1e-6))
            o.growthRate = try one("growth_rate", .infinity)
            o.d0 = try one("d0", 1e-6)
            return o
        case .dAdaptAdan, .dAdaptAdanIP:
            var o = DAdaptAdan()
            o.interpolation = self == .dAdaptAdanIP
            (o.beta1, o.beta2, o.beta3) = try triple((o.beta1, o.beta2, o.beta3), example: "0.98,0.92,0.99")
            (o.epsilon, o.weightDecay, o.noProx) = (try one("eps", 1e-8), try one("weight_decay", 0.02), flags["no_prox"] ?? false)
            o.growthRate = try one("growth_rate", .infinity)
            o.d0 = try one("d0", 1e-6)
            return o
        case .dAdaptation:
            var o = DAdaptAdamPreprint()
            (o.beta1, o.beta2) = try pair((0.9, 0.999))
            (o.epsilon, o.weightDecay, o.decouple) = (try one("eps", 1e-8), try one("weight_decay", 0), flags["decouple"] ?? false)
            o.growthRate = try one("growth_rate", .infinity)
            o.d0 = try one("d0", 1e-6)
            return o
        case .adamWScheduleFree, .rAdamScheduleFree, .sgdScheduleFree:
            var o = ScheduleFree(form: self == .adamWScheduleFree ? .adamW : self == .sgdScheduleFree ? .sgd : .radam)
            if self == .sgdScheduleFree { o.beta1 = try one("momentum", 0.9) } else { (o.beta1, o.beta2) = try pair((0.9, 0.999)) }
            o.silentSGDPhase = flags["silent_sgd_phase"] ?? true
            guard o.beta1 > 0 && o.beta1 < 1 else { throw OptimizerError("--optimizer-args: \(rawValue)'s β1 (momentum) must be between 0 and 1, as schedulefree asks") }
            (o.epsilon, o.weightDecay, o.r, o.weightLRPower) = (try one("eps", 1e-8), try one("weight_decay", 0), try one("r", 0), try one("weight_lr_power", 2))
            let warmup = try one("warmup_steps", 0)
            guard warmup >= 0, warmup == warmup.rounded() else { throw OptimizerError("--optimizer-args warmup_steps takes a whole number of steps") }
            o.warmupSteps = Int(warmup)
            return o
        case .came, .camePytorch:
            var o = CAME(package: self == .came ? .pytorchOptimizer : .camePytorch)
            (o.beta1, o.beta2, o.beta3) = try triple((0.9, 0.999, 0.9999), example: "0.9,0.999,0.9999")
            if self == .came {
                (o.eps1, o.eps2) = (try one("eps1", 1e-30), try one("eps2", 1e-16))
                (o.weightDecouple, o.fixedDecay, o.amsBound) = (flags["weight_decouple"] ?? true, flags["fixed_decay"] ?? false, flags["ams_bound"] ?? false)
            } else if let eps = values["eps"] {
                guard eps.count == 2 else { throw OptimizerError("--optimizer-args eps takes two numbers for came_pytorch.CAME, e.g. eps=1e-30,1e-16") }
                (o.eps1, o.eps2) = (eps[0], eps[1])
            }
            (o.clipThreshold, o.weightDecay) = (try one("clip_threshold", 1), try one("weight_decay", 0))
            // pytorch-optimizer's checks (validate_betas, validate_non_negative); came_pytorch asserts betas in [0, 1].
            guard self == .camePytorch ? [o.beta1, o.beta2, o.beta3].allSatisfy({ (0...1).contains($0) })
                                       : (0..<1).contains(o.beta1) && (0..<1).contains(o.beta2) && (0...1).contains(o.beta3) else {
                throw OptimizerError("--optimizer-args: \(rawValue)'s betas must lie in " + (self == .came ? "[0, 1) (β3 in [0, 1])" : "[0, 1]"))
            }
            guard self == .camePytorch || (o.weightDecay >= 0 && o.eps1 >= 0 && o.eps2 >= 0) else {
                throw OptimizerError("--optimizer-args: weight_decay, eps1 and eps2 must not be negative (pytorch-optimizer refuses them)")
            }
            return o
        case .prodigyPlusScheduleFree:
            var o = ProdigyPlusScheduleFree()
            (o.beta1, o.beta2) = try pair((0.9, 0.99))
            o.beta3 = nones.contains("beta3") ? nil : try values["beta3"].map { _ throws(OptimizerError) in try one("beta3", 0) }
            o.epsilon = nones.contains("eps") ? nil : try one("eps", 1e-8)
            (o.weightDecay, o.d0, o.dCoefficient) = (try one("weight_decay", 0), try one("d0", 1e-6), try one("d_coef", 1))
            (o.weightDecayByLR, o.useBiasCorrection) = (flags["weight_decay_by_lr"] ?? true, flags["use_bias_correction"] ?? false)
            (o.splitGroups, o.splitGroupsMean, o.factored) = (flags["split_groups"] ?? true, flags["split_groups_mean"] ?? true, flags["factored"] ?? true)
            // Adam-atan2 (eps=None) turns StableAdamW off, as the package does.
            o.useStableAdamW = (flags["use_stableadamw"] ?? true) && o.epsilon != nil
            let steps = try one("prodigy_steps", 0)
            guard steps >= 0, steps == steps.rounded(), steps < 1e9 else { throw OptimizerError("--optimizer-args prodigy_steps takes a whole number of steps") }
            o.prodigySteps = Int(steps)
            // The package's own checks.
            guard o.d0 > 0 else { throw OptimizerError("--optimizer-args d0 must be positive (ProdigyPlusScheduleFree raises otherwise)") }
            guard (0..<1).contains(o.beta1), (0..<1).contains(o.beta2), o.beta3.map({ (0..<1).contains($0) }) ?? true else {
                throw OptimizerError("--optimizer-args: ProdigyPlusScheduleFree's betas and beta3 must lie in [0, 1)")
            }
            guard o.epsilon.map({ $0 > 0 }) ?? true else { throw OptimizerError("--optimizer-args eps must be positive, or None for Adam-atan2") }
            return o
        case .adEMAMix:
            var o = AdEMAMix()
            (o.beta1, o.beta2, o.beta3) = try triple((0.9, 0.999, 0.9999), example: "0.9,0.999,0.9999")
            (o.alpha, o.epsilon, o.weightDecay) = (try one("alpha", 5), try one("eps", 1e-8), try one("weight_decay", 0.01))
            (o.alphaWarmup, o.beta3Warmup) = (try steps("t_alpha"), try steps("t_beta3"))
            guard o.beta3Warmup == nil || (o.beta1 > 0 && o.beta1 < 1 && o.beta3 > 0 && o.beta3 < 1) else {
                throw OptimizerError("--optimizer-args t_beta3 needs β1 and β3 strictly between 0 and 1 (its schedule takes their logarithms)")
            }
            return o
        }
    }
}
