/// The suite's version: every tool's --version, and what outputs record in
/// their metadata (lora_merge, lora_extract, infotext "lora-tools X").
public enum LoRATools {
    public static let version = "0.2.0"
}
