import Foundation
import LoRACore

/// Writes tiny (or full-size) SD-shaped checkpoints and LoRAs with the real key
/// names, deterministically: the same arguments give byte-identical files.
/// Every tensor's values depend only on the seed and its name.
public enum FixtureGenerator {
    // MARK: checkpoints

    public struct CheckpointOptions: Sendable {
        public var dtype: DType = .f16
        public var seed: UInt64 = 1
        public var includeVAE = true
        public var includeTextEncoders = true
        public var metadata = Metadata()
        /// Planted changes for "fine-tuned" copies: module kohya name → rank of a
        /// low-rank delta added to the weight (extraction tests).
        public var plantedDeltas: [String: Int] = [:]
        public var plantedScale: Float = 0.05
        public init() {}
    }

    /// Write a single-file checkpoint in the original LDM layout.
    public static func writeCheckpoint(_ config: ArchitectureConfig, to path: String, options: CheckpointOptions = .init(),
                                       progress: ((Int) -> Void)? = nil) throws(ModelError) {
        let layout = ModelLayout(config)
        let specs = layout.tensors.filter { spec in
            if !options.includeVAE && spec.name.hasPrefix(ModelLayout.vaePrefix) { return false }
            if !options.includeTextEncoders && (spec.name.hasPrefix("cond_stage_model.") || spec.name.hasPrefix("conditioner.")) { return false }
            return true
        }
        let entries = specs.map { SafeTensorsWriter.Entry(name: $0.name, dtype: $0.dtype ?? options.dtype, shape: $0.shape) }
        let writer = try SafeTensorsWriter(path: path, metadata: options.metadata, entries: entries)
        let planted = plantedTargets(layout, options.plantedDeltas)
        let schedule = Schedule()
        for spec in specs {
            let dtype = spec.dtype ?? options.dtype
            let count = spec.shape.reduce(1, *)
            if dtype == .i64 || dtype == .i32 {
                var bytes = [UInt8](repeating: 0, count: count * dtype.size)
                if spec.name.hasSuffix("position_ids") {
                    for i in 0..<count { withUnsafeBytes(of: Int64(i).littleEndian) { bytes.replaceSubrange((8 * i)..<(8 * i + 8), with: $0) } }
                }
                try rethrowingModelError { try bytes.withUnsafeBytes { try writer.write(name: spec.name, bytes: $0) } }
                progress?(bytes.count)
                continue
            }
            var values = [Float](repeating: 0, count: count)
            fillCheckpointTensor(spec, into: &values, seed: options.seed, schedule: schedule)
            for (target, rank) in planted where target.checkpointKey == spec.name {
                addPlantedDelta(target, rank: rank, into: &values, seed: options.seed, scale: options.plantedScale)
            }
            try rethrowingModelError { try values.withUnsafeBufferPointer { try writer.write(name: spec.name, floats: $0) } }
            progress?(count * dtype.size)
        }
        try writer.finish()
    }

    /// A "fine-tuned" copy of the default checkpoint: rank-2 changes planted in
    /// every attention module and in a few resnet convs (extraction tests).
    public static func tunedOptions(_ config: ArchitectureConfig, dtype: DType = .f16, rank: Int = 2) -> CheckpointOptions {
        var options = CheckpointOptions()
        options.dtype = dtype
        for t in ModelLayout(config).targets where t.set == .attention {
            options.plantedDeltas[t.kohyaName] = rank
        }
        for t in ModelLayout(config).targets
        where t.set == .resnet && (t.kohyaName.contains("down_blocks_0_resnets_0") || t.kohyaName.contains("up_blocks_3_resnets_2")) {
            options.plantedDeltas[t.kohyaName] = rank
        }
        return options
    }

    static func plantedTargets(_ layout: ModelLayout, _ planted: [String: Int]) -> [(LoRATarget, Int)] {
        layout.targets.compactMap { t in planted[t.kohyaName].map { (t, $0) } }
    }

    /// Add a rank-`rank` delta (rows slice for packed q/k/v) to a weight.
    static func addPlantedDelta(_ target: LoRATarget, rank: Int, into values: inout [Float], seed: UInt64, scale: Float) {
        let out = target.shape[0]
        let inputs = target.shape.dropFirst().reduce(1, *)
        var rng = SeededRandom(seed: seed &+ 7919, name: "planted." + target.kohyaName)
        var u = [Float](repeating: 0, count: out * rank), v = [Float](repeating: 0, count: rank * inputs)
        u.withUnsafeMutableBufferPointer { rng.fill($0, scale: 1) }
        v.withUnsafeMutableBufferPointer { rng.fill($0, scale: scale / Float(rank).squareRoot()) }
        let rowOffset = target.rows?.lowerBound ?? 0
        // A plain loop, not BLAS: BLAS kernels differ between CPUs in their
        // summation order, and fixtures must be identical on every machine.
        values.withUnsafeMutableBufferPointer { w in
            v.withUnsafeBufferPointer { vv in
                for o in 0..<out {
                    let row = w.baseAddress! + (rowOffset + o) * inputs
                    for k in 0..<rank {
                        let a = u[o * rank + k]
                        let source = vv.baseAddress! + k * inputs
                        for i in 0..<inputs { row[i] += a * source[i] }
                    }
                }
            }
        }
    }

    /// The DDPM schedule SD checkpoints carry (scaled-linear betas, 1000 steps).
    struct Schedule {
        let betas: [Double]
        let alphasCumprod: [Double]
        init() {
            let start = 0.00085.squareRoot(), end = 0.012.squareRoot()
            var betas = [Double](repeating: 0, count: 1000)
            for i in 0..<1000 {
                let b: Double = start + (end - start) * Double(i) / 999.0
                betas[i] = b * b
            }
            self.betas = betas
            var running = 1.0
            var cumulative = [Double](repeating: 0, count: 1000)
            for i in 0..<1000 {
                running *= 1 - betas[i]
                cumulative[i] = running
            }
            alphasCumprod = cumulative
        }

        func values(_ name: String) -> [Double]? {
            let a = alphasCumprod
            let prev = [1.0] + a.dropLast()
            var out = [Double](repeating: 0, count: 1000)
            for i in 0..<1000 {
                let beta: Double = betas[i], ac: Double = a[i], ap: Double = prev[i]
                let variance: Double = beta * (1 - ap) / (1 - ac)
                switch name {
                case "betas": out[i] = beta
                case "alphas_cumprod": out[i] = ac
                case "alphas_cumprod_prev": out[i] = ap
                case "sqrt_alphas_cumprod": out[i] = ac.squareRoot()
                case "sqrt_one_minus_alphas_cumprod": out[i] = (1 - ac).squareRoot()
                case "log_one_minus_alphas_cumprod": out[i] = log(1 - ac)
                case "sqrt_recip_alphas_cumprod": out[i] = (1 / ac).squareRoot()
                case "sqrt_recipm1_alphas_cumprod": out[i] = (1 / ac - 1).squareRoot()
                case "posterior_variance": out[i] = variance
                case "posterior_log_variance_clipped": out[i] = log(max(variance, 1e-20))
                case "posterior_mean_coef1": out[i] = beta * ap.squareRoot() / (1 - ac)
                case "posterior_mean_coef2": out[i] = (1 - ap) * (1 - beta).squareRoot() / (1 - ac)
                default: return nil
                }
            }
            return out
        }
    }

    static func fillCheckpointTensor(_ spec: TensorSpec, into values: inout [Float], seed: UInt64, schedule: Schedule) {
        if let scheduled = schedule.values(spec.name) {
            for i in values.indices { values[i] = Float(scheduled[i]) }
            return
        }
        if spec.name == "model_ema.decay" { values[0] = 0.9999; return }
        if spec.name.hasSuffix("logit_scale") { values[0] = 4.6052; return }
        var rng = SeededRandom(seed: seed, name: spec.name)
        let isNorm = spec.shape.count == 1 && spec.name.hasSuffix(".weight") && isNormName(spec.name)
        let isBias = spec.name.hasSuffix(".bias") || spec.name.hasSuffix("in_proj_bias")
        if isNorm {
            for i in values.indices { values[i] = 1 + 0.1 * rng.symmetric() }
        } else if isBias || spec.shape.count <= 1 {
            for i in values.indices { values[i] = 0.02 * rng.symmetric() }
        } else {
            let fanIn = spec.shape.dropFirst().reduce(1, *)
            let scale = Float(3.0 / Double(max(fanIn, 1))).squareRoot()
            values.withUnsafeMutableBufferPointer { rng.fill($0, scale: scale) }
        }
    }

    static func isNormName(_ name: String) -> Bool {
        ["norm", "ln_", "in_layers.0", "out_layers.0", "out.0", "layer_norm", "ln_final"].contains { name.contains($0) }
    }

    // MARK: LoRAs

    public enum LoRALayout: String, Sendable, CaseIterable {
        /// kohya LoRA: attention/projection layers, `lora_down`/`lora_up`/`alpha`.
        case lora
        /// kohya LoRA-C3Lier / LoCon: also resnet convs (3×3 with the conv rank).
        case locon
        /// LyCORIS LoHa.
        case loha
        /// LyCORIS LoKr.
        case lokr
        /// LyCORIS (IA)^3.
        case ia3
        /// LyCORIS full (diff).
        case full
        /// diffusers/PEFT naming (`unet.…lora_A.weight`), no alpha tensors.
        case diffusers
        /// kohya DyLoRA (same tensors as LoRA, different metadata).
        case dylora
    }

    public struct LoRAOptions: Sendable {
        public var layout: LoRALayout = .lora
        public var rank = 4
        public var alpha: Double = 2
        public var convRank = 4
        public var convAlpha: Double = 1
        public var dtype: DType = .f16
        public var seed: UInt64 = 7
        public var includeTextEncoder = true
        public var includeUNet = true
        /// Scale of the up-side factors (trained LoRAs have small ups).
        public var upScale: Float = 0.5
        /// Extra metadata; realistic kohya metadata is generated unless `bareMetadata`.
        public var metadata = Metadata()
        public var bareMetadata = false
        /// Names (kohya) of modules to write with an all-zero up factor.
        public var deadModules: Set<String> = []
        /// LoKr 3×3 conv factors as LyCORIS 3.x stores them without Tucker:
        /// lokr_w2_b flattened to [r, in/b · kh · kw] (LoHa's are always flattened).
        public var flattenedLoKrConv = false
        public init() {}
    }

    /// The modules a layout covers.
    public static func targets(for config: ArchitectureConfig, options: LoRAOptions) -> [LoRATarget] {
        ModelLayout(config).targets.filter { t in
            if t.component == .unet && !options.includeUNet { return false }
            if t.component != .unet && !options.includeTextEncoder { return false }
            switch options.layout {
            case .locon, .loha, .lokr, .ia3, .full: return t.set == .attention || t.set == .resnet
            default: return t.set == .attention
            }
        }
    }

    /// Write a LoRA-family file for `config`.
    public static func writeLoRA(_ config: ArchitectureConfig, to path: String, options: LoRAOptions = .init()) throws(ModelError) {
        let targets = targets(for: config, options: options)
        var tensors: [(String, [Int], DType, [Float])] = []
        for target in targets {
            tensors += moduleTensors(target, config: config, options: options)
        }
        var metadata = options.bareMetadata ? Metadata() : kohyaMetadata(config, options: options)
        for pair in options.metadata { metadata[pair.key] = pair.value }
        let entries = tensors.map { SafeTensorsWriter.Entry(name: $0.0, dtype: $0.2, shape: $0.1) }
        let writer = try SafeTensorsWriter(path: path, metadata: metadata, entries: entries)
        for (name, _, dtype, values) in tensors {
            if dtype == .i64 || dtype == .i32 || dtype == .u8 {
                var bytes = [UInt8](repeating: 0, count: values.count * dtype.size)
                for (i, v) in values.enumerated() { bytes[i * dtype.size] = UInt8(v) }
                try rethrowingModelError { try bytes.withUnsafeBytes { try writer.write(name: name, bytes: $0) } }
            } else {
                try rethrowingModelError { try values.withUnsafeBufferPointer { try writer.write(name: name, floats: $0) } }
            }
        }
        try writer.finish()
    }

    static func random(_ count: Int, _ seed: UInt64, _ name: String, scale: Float) -> [Float] {
        var rng = SeededRandom(seed: seed, name: name)
        var values = [Float](repeating: 0, count: count)
        values.withUnsafeMutableBufferPointer { rng.fill($0, scale: scale) }
        return values
    }

    static func moduleTensors(_ target: LoRATarget, config: ArchitectureConfig, options: LoRAOptions) -> [(String, [Int], DType, [Float])] {
        let out = target.shape[0]
        let inputs = target.shape.count > 1 ? target.shape[1] : 1
        let kernel = target.shape.count == 4 ? target.shape[2] : 1
        let isConv3 = kernel > 1
        let rank = min(isConv3 ? options.convRank : options.rank, out, inputs * kernel * kernel)
        let alpha = isConv3 ? options.convAlpha : options.alpha
        let name = target.kohyaName
        let seed = options.seed
        let dtype = options.dtype
        let dead = options.deadModules.contains(name)
        let upScale: Float = dead ? 0 : options.upScale / Float(rank).squareRoot()
        let downScale = 1 / Float(inputs * kernel * kernel).squareRoot()
        let conv4 = target.shape.count == 4
        switch options.layout {
        case .lora, .locon, .dylora, .diffusers:
            let downShape = conv4 ? [rank, inputs, kernel, kernel] : [rank, inputs]
            let upShape = conv4 ? [out, rank, 1, 1] : [out, rank]
            let down = random(downShape.reduce(1, *), seed, name + ".down", scale: downScale)
            let up = random(upShape.reduce(1, *), seed, name + ".up", scale: upScale)
            if options.layout == .diffusers {
                let component = target.component == .unet ? "unet" : (target.component == .textEncoder2 ? "text_encoder_2" : "text_encoder")
                let base = component + "." + target.diffusersPath
                return [(base + ".lora_A.weight", downShape, dtype, down), (base + ".lora_B.weight", upShape, dtype, up)]
            }
            return [(name + ".lora_down.weight", downShape, dtype, down), (name + ".lora_up.weight", upShape, dtype, up),
                    (name + ".alpha", [], dtype, [Float(alpha)])]
        case .loha:
            let cols = inputs * kernel * kernel
            let scale = Float(upScale).squareRoot()
            return [(name + ".hada_w1_a", [out, rank], dtype, random(out * rank, seed, name + ".w1a", scale: dead ? 0 : scale)),
                    (name + ".hada_w1_b", [rank, cols], dtype, random(rank * cols, seed, name + ".w1b", scale: downScale.squareRoot())),
                    (name + ".hada_w2_a", [out, rank], dtype, random(out * rank, seed, name + ".w2a", scale: scale)),
                    (name + ".hada_w2_b", [rank, cols], dtype, random(rank * cols, seed, name + ".w2b", scale: downScale.squareRoot())),
                    (name + ".alpha", [], dtype, [Float(alpha)])]
        case .lokr:
            // factor 2 on both sides: w1 [2, 2] full, w2 [out/2, in/2(, k, k)] low rank when it pays.
            let a = out % 2 == 0 ? 2 : 1, b = inputs % 2 == 0 ? 2 : 1
            let c = out / a, d = inputs / b
            var result: [(String, [Int], DType, [Float])] = [
                (name + ".lokr_w1", [a, b], dtype, random(a * b, seed, name + ".w1", scale: dead ? 0 : 1))]
            let w2Rank = min(rank, c, d)
            if w2Rank < max(c, d) / 2 {
                result.append((name + ".lokr_w2_a", [c, w2Rank], dtype, random(c * w2Rank, seed, name + ".w2a", scale: upScale)))
                let bShape = conv4 ? (options.flattenedLoKrConv ? [w2Rank, d * kernel * kernel] : [w2Rank, d, kernel, kernel]) : [w2Rank, d]
                result.append((name + ".lokr_w2_b", bShape, dtype, random(bShape.reduce(1, *), seed, name + ".w2b", scale: downScale)))
                result.append((name + ".alpha", [], dtype, [Float(alpha)]))
            } else {
                let shape = conv4 ? [c, d, kernel, kernel] : [c, d]
                result.append((name + ".lokr_w2", shape, dtype, random(shape.reduce(1, *), seed, name + ".w2", scale: upScale * downScale)))
                result.append((name + ".alpha", [], dtype, [Float(rank)]))
            }
            return result
        case .ia3:
            return [(name + ".weight", [out], dtype, random(out, seed, name + ".ia3", scale: dead ? 0 : 0.1)),
                    (name + ".on_input", [], .u8, [0])]
        case .full:
            return [(name + ".diff", target.shape, dtype, random(target.shape.reduce(1, *), seed, name + ".diff", scale: dead ? 0 : 0.01))]
        }
    }

    /// Metadata as sd-scripts writes it (values are Python reprs).
    public static func kohyaMetadata(_ config: ArchitectureConfig, options: LoRAOptions) -> Metadata {
        var m = Metadata()
        let module: String
        var args: [String: String] = [:]
        switch options.layout {
        case .lora, .diffusers: module = "networks.lora"
        case .locon:
            module = "networks.lora"
            args = ["conv_dim": String(options.convRank), "conv_alpha": formatNumber(options.convAlpha)]
        case .dylora:
            module = "networks.dylora"
            args = ["unit": "1"]
        case .loha, .lokr, .ia3, .full:
            module = "lycoris.kohya"
            args = ["algo": options.layout.rawValue, "preset": "full", "conv_dim": String(options.convRank), "conv_alpha": formatNumber(options.convAlpha)]
        }
        m["ss_network_module"] = module
        m["ss_network_dim"] = String(options.rank)
        m["ss_network_alpha"] = formatNumber(options.alpha)
        m["ss_network_args"] = args.isEmpty ? "null" : JSON.object(args.sorted { $0.key < $1.key }.map { ($0.key, .string($0.value)) }).serialized()
        m["ss_base_model_version"] = config.family.kohyaBaseVersion
        m["ss_v2"] = config.family == .sd2 ? "True" : "False"
        m["ss_sd_model_name"] =
            config.family == .sdxl
            ? "sd_xl_base_1.0.safetensors" : (config.family == .sd2 ? "v2-1_512-ema-pruned.safetensors" : "v1-5-pruned-emaonly.safetensors")
        m["ss_resolution"] = config.family == .sdxl ? "(1024, 1024)" : "(512, 512)"
        m["ss_learning_rate"] = "0.0001"
        m["ss_unet_lr"] = "0.0001"
        m["ss_text_encoder_lr"] = "5e-05"
        m["ss_optimizer"] = "bitsandbytes.optim.adamw.AdamW8bit"
        m["ss_lr_scheduler"] = "cosine"
        m["ss_num_epochs"] = "10"
        m["ss_epoch"] = "10"
        m["ss_steps"] = "1500"
        m["ss_max_train_steps"] = "1500"
        m["ss_num_train_images"] = "300"
        m["ss_total_batch_size"] = "2"
        m["ss_mixed_precision"] = "fp16"
        m["ss_clip_skip"] = config.family == .sd1 ? "2" : "None"
        m["ss_seed"] = "42"
        m["ss_output_name"] = "fixture_\(options.layout.rawValue)"
        m["ss_training_started_at"] = "1700000000.0"
        m["ss_training_finished_at"] = "1700003600.0"
        m["ss_dataset_dirs"] = #"{"10_mychar": {"n_repeats": 10, "img_count": 30}}"#
        m["ss_tag_frequency"] = #"{"10_mychar": {"mychar": 30, "1girl": 28, "solo": 25, "smile": 12, "long hair": 20, "looking at viewer": 9}}"#
        m["modelspec.sai_model_spec"] = "1.0.1"
        m["modelspec.architecture"] = config.family.modelSpecArchitecture + "/lora"
        m["modelspec.implementation"] = config.family == .sdxl ? "https://github.com/Stability-AI/generative-models" : "diffusers"
        m["modelspec.title"] = "fixture \(options.layout.rawValue)"
        m["modelspec.resolution"] = config.family == .sdxl ? "1024x1024" : "512x512"
        return m
    }
}
