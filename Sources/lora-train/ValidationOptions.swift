import ArgumentParser
import ToolSupport

/// kohya's validation arguments (train_network.py, sd-scripts 2025): a share of each training folder
/// held out, its loss measured without training on it.
struct ValidationOptions: ParsableArguments {
    @Option(name: [.customLong("validation-split"), .customLong("validation_split")],
            help: ArgumentHelp("Hold out this share of each training folder's images (kohya's split: shuffled by the validation seed) and report their loss at the four timesteps 200…800, every epoch.",
                               valueName: "0-1"))
    var validationSplit: Double?

    @Option(name: [.customLong("validation-seed"), .customLong("validation_seed")],
            help: ArgumentHelp("Seed of the split and of the validation's noise (default: --seed).", valueName: "n"))
    var validationSeed: UInt64?

    @Option(name: [.customLong("validate-every-n-steps"), .customLong("validate_every_n_steps")],
            help: ArgumentHelp("Also validate after every n optimizer steps.", valueName: "n"))
    var validateEveryNSteps: Int?

    @Option(name: [.customLong("validate-every-n-epochs"), .customLong("validate_every_n_epochs")],
            help: ArgumentHelp("Validate at the end of every n-th epoch only (default: every epoch).", valueName: "n"))
    var validateEveryNEpochs: Int?

    @Option(name: [.customLong("max-validation-steps"), .customLong("max_validation_steps")],
            help: ArgumentHelp("At most n validation batches per validation (default: all).", valueName: "n"))
    var maxValidationSteps: Int?

    func validate() throws {
        try refuseNaN([("--validation-split", validationSplit)])
        if let s = validationSplit, !(0..<1).contains(s) {
            throw ValidationError("--validation-split \(s): a share from 0 to below 1 is expected (0.1 holds out a tenth of each folder)")
        }
        for (name, value) in [("--validate-every-n-steps", validateEveryNSteps), ("--validate-every-n-epochs", validateEveryNEpochs),
                              ("--max-validation-steps", maxValidationSteps)] {
            if let value, value < 1 { throw ValidationError("\(name) must be at least 1") }
        }
    }
}
