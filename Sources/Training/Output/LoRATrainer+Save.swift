import Diffusion
import Foundation
import LinearAlgebra
import LoRACore

/// Writing the network the way train_network.py does: kohya keys, alpha per
/// module, `--save_precision`, the `ss_*` training metadata with Python's
/// spellings of values (str() of the argument: "True", "None", "0.0001"),
/// ModelSpec keys, and `sshs_model_hash` (KohyaLoRAWriter). The file appears
/// under its final name only when complete.
extension LoRATrainer {
    @discardableResult
    public func save(name: String, epoch: Int, step: Int) throws(ModelError) -> String {
        let path = try saveNetwork(to: (configuration.outputDirectory as NSString).appendingPathComponent(name + ".safetensors"), epoch: epoch, step: step)
        savedFiles.append(path)
        return path
    }

    /// The network as a kohya LoRA at `path` (`--save-precision`, LyCORIS's scalars multiplied in); for a training
    /// state (`state`), fp32 with the factors as the optimizer holds them, so a resumed run starts from the same values
    /// (the scalars go into train_state.json).
    func saveNetwork(to path: String, epoch: Int, step: Int, state: Bool = false) throws(ModelError) -> String {
        _ = try KohyaLoRAWriter.write(tensors: network.fileTensors(multiplyingScalars: !state), to: path, dtype: state ? .f32 : configuration.savePrecision,
                                      metadata: metadata(epoch: epoch, step: step), inputs: [model.path])
        return path
    }

    /// sd-scripts' metadata for this run at `epoch`/`step` (train_network.py, in its order).
    public func metadata(epoch: Int, step: Int) -> Metadata {
        let c = configuration
        func py(_ v: Double?) -> String { v.map { pythonFloat($0) } ?? "None" }
        func py(_ v: Int?) -> String { v.map(String.init) ?? "None" }
        func py(_ v: Bool) -> String { v ? "True" : "False" }
        var m = Metadata()
        m["ss_session_id"] = String(sessionID)
        m[.trainingStartedAt] = pythonFloat(startedAt.timeIntervalSince1970)
        m[.outputName] = c.outputName
        m[.learningRate] = py(c.learningRate)
        m[.textEncoderLr] = py(c.textEncoderLearningRate)
        m[.unetLr] = py(c.unetLearningRate)
        m[.numTrainImages] = String(plan.trainImagesWithRepeats)
        m["ss_num_validation_images"] = String(validationPlan?.trainImagesWithRepeats ?? 0)
        m[.numRegImages] = String(plan.regImagesWithRepeats)
        m["ss_num_batches_per_epoch"] = String(steps.batchesPerEpoch)
        m[.numEpochs] = String(steps.epochs)
        m["ss_gradient_checkpointing"] = py(c.gradientCheckpointing)
        m[.gradientAccumulationSteps] = String(c.gradientAccumulationSteps)
        m[.maxTrainSteps] = String(steps.totalSteps)
        m[.lrWarmupSteps] = String(warmupSteps)
        // kohya's get_optimizer rewrites args.lr_scheduler for Adafactor's relative step before the metadata is made.
        m[.lrScheduler] = c.adafactorRelativeStep ? "adafactor:\(pythonFloat(c.learningRate))" : c.scheduler.rawValue
        m[.networkModule] = c.networkModule.rawValue
        m[.networkDim] = String(c.networkDim)
        m[.networkAlpha] = pythonFloat(Double(c.networkAlpha))
        m["ss_network_dropout"] = py(c.networkDropout)
        m[.mixedPrecision] = c.computePrecision == .bf16 ? "bf16" : "no"
        m["ss_full_fp16"] = "False"
        m[.v2] = py(model.family == .sd2)
        let v = objective.prediction == .velocity
        m[.baseModelVersion] = model.family == .sd2 && v ? "sd_v2_v" : model.family.kohyaBaseVersion
        m[.clipSkip] = py(c.clipSkip)
        m["ss_max_token_length"] = py(c.maxTokenLength)
        // kohya's args.cache_latents: true unless some images are encoded at every step (random_crop, color_aug, face crops).
        m["ss_cache_latents"] = py(!plan.images.indices.contains(where: plan.encodesEachStep))
        m[.seed] = String(c.seed)
        m["ss_lowram"] = "False"
        m[.noiseOffset] = py(c.noise.offset)
        m["ss_multires_noise_iterations"] = py(c.noise.multiresIterations)
        m["ss_multires_noise_discount"] = pythonFloat(c.noise.multiresDiscount)
        m["ss_adaptive_noise_scale"] = py(c.noise.adaptiveScale)
        m["ss_zero_terminal_snr"] = py(c.zeroTerminalSNR)
        m[.trainingComment] = c.trainingComment ?? "None"
        // Not sd-scripts: no ss_sd_scripts_commit_hash; the trainer and its version under a key of ours.
        m[.trainer] = "lora-train \(LoRATools.version)"
        // kohya: module.Class(key=str(ast.literal_eval(value)),…), so betas=0.9,0.99 reads "betas=(0.9, 0.99)" and eps=1e-8 "eps=1e-08".
        let arguments = c.optimizerArguments.map { item in
            guard let equals = item.firstIndex(of: "=") else { return item }
            return item[..<equals].trimmingCharacters(in: .whitespaces) + "=" + pythonLiteral(String(item[item.index(after: equals)...]))
        }
        m[.optimizer] = optimizer.kohyaName + (arguments.isEmpty ? "" : "(\(arguments.joined(separator: ",")))")
        m["ss_max_grad_norm"] = pythonFloat(Double(c.maxGradNorm))
        m[.captionDropoutRate] = pythonFloat(plan.subsets.first?.captionDropoutRate ?? 0)
        m["ss_caption_dropout_every_n_epochs"] = String(plan.subsets.first?.captionDropoutEveryNEpochs ?? 0)
        m[.captionTagDropoutRate] = pythonFloat(plan.subsets.first?.captionTagDropoutRate ?? 0)
        m["ss_face_crop_aug_range"] = plan.subsets.first?.faceCropRange.map(String.init(describing:)) ?? "None"
        m["ss_prior_loss_weight"] = pythonFloat(c.priorLossWeight)
        m[.minSnrGamma] = py(c.objective.minSNRGamma)
        m["ss_scale_weight_norms"] = py(c.scaleWeightNorms)
        m["ss_ip_noise_gamma"] = py(c.noise.inputPerturbation)
        m["ss_debiased_estimation"] = py(c.objective.debiasedEstimation)
        m["ss_noise_offset_random_strength"] = py(c.noise.offsetRandomStrength)
        m["ss_ip_noise_gamma_random_strength"] = py(c.noise.inputPerturbationRandomStrength)
        m["ss_loss_type"] = c.objective.lossType.rawValue
        m["ss_huber_schedule"] = c.objective.huberSchedule.rawValue
        m["ss_huber_scale"] = pythonFloat(c.objective.huberScale)
        m["ss_huber_c"] = pythonFloat(c.objective.huberC)
        m["ss_validation_seed"] = c.validation.seed.map(String.init) ?? "None"
        m["ss_validation_split"] = pythonFloat(c.validation.split)
        m["ss_max_validation_steps"] = py(c.validation.maxSteps)
        m["ss_validate_every_n_epochs"] = py(c.validation.everyNEpochs)
        m["ss_validate_every_n_steps"] = py(c.validation.everyNSteps)
        // kohya's U-Net/text encoder in fp8 (--fp8_base): a GPU memory saver not done here (lora-train says so).
        m["ss_fp8_base"] = "False"
        m["ss_fp8_base_unet"] = "False"
        m["ss_resize_interpolation"] = c.resizeInterpolation ?? "None"
        datasetMetadata(into: &m)
        // kohya records --network_args only when given, as the strings typed (json.dumps of its key → value dict).
        var args: [(String, JSON)] = c.networkArguments.compactMap { item in
            let parts = item.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            return parts.count == 2 ? (parts[0], .string(parts[1])) : nil
        }
        if args.isEmpty && c.networkModule != .lycoris {
            if let conv = c.convDim { args += [("conv_dim", .string(String(conv))), ("conv_alpha", .string(formatNumber(Double(c.convAlpha))))] }
            if let p = c.rankDropout { args.append(("rank_dropout", .string(formatNumber(p)))) }
            if let p = c.moduleDropout { args.append(("module_dropout", .string(formatNumber(p)))) }
        }
        if !args.isEmpty { m[.networkArgs] = JSON.object(args).pythonDumps() }
        m[.sdModelName] = (model.path as NSString).lastPathComponent
        m[.sdModelHash] = modelHashes.legacy
        m[.newSdModelHash] = modelHashes.sha256
        // kohya with --vae: its A1111 hash, SHA-256 and file name.
        if let vae = model.vaePath, let file = try? MappedFile(path: vae) {
            m["ss_vae_hash"] = Hashing.legacyModelHash(file)
            m["ss_new_vae_hash"] = Hashing.sha256(file)
            m["ss_vae_name"] = (vae as NSString).lastPathComponent
        }
        m[.trainingFinishedAt] = pythonFloat(Date().timeIntervalSince1970)
        m[.steps] = String(step)
        m[.epoch] = String(epoch)
        // ModelSpec (library/sai_model_spec.py).
        m[.specSaiModelSpec] = "1.0.1"
        m[.specArchitecture] = (model.family == .sd2 && v ? "stable-diffusion-v2-768-v" : model.family.modelSpecArchitecture) + "/lora"
        m[.specImplementation] = "diffusers"
        m[.specTitle] = c.outputName
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime]
        m[.specDate] = formatter.string(from: startedAt)
        let side = plan.bucketing.resolution
        m[.specResolution] = "\(side.width)x\(side.height)"
        m[.specPredictionType] = v ? "v" : "epsilon"
        if let skip = c.clipSkip { m["modelspec.encoder_layer"] = String(skip) }
        for (key, value) in c.modelCard { m[key] = value }
        guard c.noMetadata else { return m }
        // kohya's --no_metadata: SS_METADATA_MINIMUM_KEYS (what loaders need to read the file) and the ModelSpec card.
        let minimum: Set<String> = ["ss_v2", "ss_base_model_version", "ss_network_module", "ss_network_dim", "ss_network_alpha", "ss_network_args"]
        return Metadata(m.pairs.filter { minimum.contains($0.key) || $0.key.hasPrefix("modelspec.") }.map { ($0.key, $0.value) })
    }
}

/// Python's repr of a float (what str() of an argument writes): shortest
/// round-trip digits, ".0" on integers, exponent below 1e-4 and from 1e16.
public func pythonFloat(_ value: Double) -> String {
    guard value.isFinite else { return value.isNaN ? "nan" : (value > 0 ? "inf" : "-inf") }
    let magnitude = abs(value)
    if magnitude != 0 && (magnitude < 1e-4 || magnitude >= 1e16) {
        // Swift prints 1e-05 as "1e-05" already; make sure of the two-digit exponent Python uses.
        let text = "\(value)"
        guard let e = text.firstIndex(of: "e") else { return text }
        let mantissa = text[..<e].hasSuffix(".0") ? String(text[..<e].dropLast(2)) : String(text[..<e])
        var exponent = String(text[text.index(after: e)...])
        let sign = exponent.hasPrefix("-") ? "-" : "+"
        exponent = exponent.trimmingCharacters(in: CharacterSet(charactersIn: "+-"))
        if exponent.count < 2 { exponent = "0" + exponent }
        return mantissa + "e" + sign + exponent
    }
    let text = "\(value)"
    if text.contains("e") {
        // Swift uses an exponent where Python does not (e.g. 1e+15): print the integer part.
        return value == value.rounded() ? String(format: "%.1f", value) : String(format: "%.17g", value)
    }
    return text
}

/// str(ast.literal_eval(text)) for the literals an --optimizer_args value holds: numbers (1e-8 → "1e-08", 2 → "2"),
/// True/False/None, quoted strings (their content), and tuples or lists of those ("0.9,0.99" → "(0.9, 0.99)"). Text
/// that is none of these (Python would refuse it) is kept as written.
public func pythonLiteral(_ text: String) -> String {
    let t = text.trimmingCharacters(in: .whitespaces)
    if ["True", "False", "None"].contains(t) { return t }
    if t.count >= 2, let q = t.first, q == "'" || q == "\"", t.last == q { return String(t.dropFirst().dropLast()) }
    let unsigned = t.hasPrefix("-") || t.hasPrefix("+") ? t.dropFirst() : Substring(t)
    if !unsigned.isEmpty, unsigned.allSatisfy(\.isNumber), let n = Int(t) { return String(n) }
    if !unsigned.isEmpty, unsigned.allSatisfy({ $0.isNumber || ".eE+-".contains($0) }), let v = Double(t) { return pythonFloat(v) }
    // A sequence: a list's brackets, a tuple's optional parentheses, and the commas at its top level.
    let bracketed = t.count >= 2 && ((t.first == "(" && t.last == ")") || (t.first == "[" && t.last == "]"))
    let body = bracketed ? t.dropFirst().dropLast() : Substring(t)
    var items: [String] = [], depth = 0, start = body.startIndex
    for i in body.indices {
        switch body[i] {
        case "(", "[": depth += 1
        case ")", "]": depth -= 1
        case "," where depth == 0:
            items.append(body[start..<i].trimmingCharacters(in: .whitespaces))
            start = body.index(after: i)
        default: break
        }
    }
    let commas = !items.isEmpty
    let last = body[start...].trimmingCharacters(in: .whitespaces)
    if !last.isEmpty { items.append(last) }
    if t.first == "[" && bracketed { return "[" + items.map(pythonLiteral).joined(separator: ", ") + "]" }
    if !commas { return bracketed && !items.isEmpty ? pythonLiteral(items[0]) : bracketed ? "()" : t }   // (x) is x itself
    return "(" + items.map(pythonLiteral).joined(separator: ", ") + (items.count == 1 ? ",)" : ")")
}
