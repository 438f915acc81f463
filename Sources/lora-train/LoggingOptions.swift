import ArgumentParser

/// kohya's tracker options (train_util.py `prepare_accelerator`): `--logging_dir` alone means a
/// TensorBoard log, as accelerate's default tracker; Weights & Biases is refused by name.
struct LoggingOptions: ParsableArguments {
    @Option(name: [.customLong("logging-dir"), .customLong("logging_dir")],
            help: ArgumentHelp("Also write a TensorBoard log (kohya's tags: loss/current, loss/average, lr/unet, …) under this folder, in <log-prefix><YYYYmmddHHMMSS>/network_train/.",
                               valueName: "folder"), completion: .directory)
    var loggingDir: String?

    @Option(name: [.customLong("log-prefix"), .customLong("log_prefix")], help: ArgumentHelp("Put this in front of the TensorBoard run folder's name.", valueName: "text"))
    var logPrefix: String?

    @Option(name: [.customLong("log-tracker-name"), .customLong("log_tracker_name")],
            help: ArgumentHelp("The TensorBoard run's subfolder (kohya's default: network_train).", valueName: "name"))
    var logTrackerName: String?

    @Flag(name: [.customLong("log-config"), .customLong("log_config")],
          help: "With --logging-dir, log the run's settings for TensorBoard's HPARAMS tab and in hparams.yml, as kohya's --log_config (paths to your files left out).")
    var logConfig = false

    @Option(name: [.customLong("log-with"), .customLong("log_with")],
            help: ArgumentHelp("tensorboard (the default with --logging-dir); wandb is not supported.", valueName: "tracker"))
    var logWith: String?

    @Option(name: [.customLong("console-log-file"), .customLong("console_log_file")],
            help: ArgumentHelp("Also write the lines lora-train reports (plan, notes, warnings, errors; not the bar) to this file, as kohya's log.",
                               valueName: "path"), completion: .file())
    var consoleLogFile: String?

    func validate() throws {
        if let logWith {
            switch logWith.lowercased() {
            case "tensorboard":
                guard loggingDir != nil else { throw ValidationError("--log-with tensorboard needs --logging-dir (kohya asks the same)") }
            case "wandb", "all":
                throw ValidationError("--log-with \(logWith): Weights & Biases is not supported; use --logging-dir for a TensorBoard log "
                                      + "(the CSV log and the loss curve are always written beside the LoRA)")
            default: throw ValidationError("--log-with \(logWith): expected tensorboard")
            }
        }
        if let name = logTrackerName, name.isEmpty || name.contains("/") || name == "." || name == ".." {
            throw ValidationError("--log-tracker-name \(name): a folder name is expected")
        }
        if let prefix = logPrefix, prefix.contains("/") { throw ValidationError("--log-prefix \(prefix): a folder name prefix is expected") }
    }
}
