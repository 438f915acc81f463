import Foundation
import LoRACore

/// The per-step CSV beside the outputs, its columns named as kohya's
/// TensorBoard tags: step, epoch, loss/current, loss/average, lr/unet,
/// lr/textencoder (empty for a part that does not train), lr/d*lr (Prodigy and
/// D-Adaptation: d times the rate, the Adam-equivalent rate they chose). Written line by
/// line so an interrupted run keeps its history.
public final class TrainingLog {
    public let path: String
    private let handle: FileHandle

    /// `appending`: a resumed run continues the log it finds (a new one otherwise).
    public init(path: String, appending: Bool = false) throws(ModelError) {
        self.path = path
        let header = Data("step,epoch,loss/current,loss/average,lr/unet,lr/textencoder,lr/d*lr\n".utf8)
        let continuing = appending && FileManager.default.fileExists(atPath: path)
        guard continuing || FileManager.default.createFile(atPath: path, contents: header),
              let handle = FileHandle(forWritingAtPath: path) else {
            throw ModelError(.io, "cannot write the training log", file: path)
        }
        handle.seekToEndOfFile()
        self.handle = handle
    }

    public func record(step: Int, epoch: Int, loss: Double, averageLoss: Double, learningRates: [(group: String, rate: Double)],
                       adaptiveScale: Double? = nil) {
        // With block learning rates the U-Net's groups are unet_block<i>: the first one's rate stands for them.
        var rates = ["unet", "textencoder"].map { name in
            learningRates.first { $0.group == name || (name == "unet" && $0.group.hasPrefix("unet_block")) }.map { pythonFloat($0.rate) } ?? ""
        }
        rates.append(adaptiveScale.map { d in pythonFloat(d * (learningRates.map(\.rate).max() ?? 0)) } ?? "")
        handle.write(Data(([String(step), String(epoch), pythonFloat(loss), pythonFloat(averageLoss)] + rates).joined(separator: ",").utf8 + [10]))
    }

    deinit { try? handle.close() }
}
