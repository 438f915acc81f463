import Foundation
import LoRACore

/// The per-step CSV beside the outputs (what kohya sends to TensorBoard as
/// loss/current, loss/average, lr/unet): step, epoch, loss, avr_loss, lr.
/// Written line by line so an interrupted run keeps its history.
public final class TrainingLog {
    public let path: String
    private let handle: FileHandle

    public init(path: String) throws(ModelError) {
        self.path = path
        guard FileManager.default.createFile(atPath: path, contents: Data("step,epoch,loss,avr_loss,lr\n".utf8)),
              let handle = FileHandle(forWritingAtPath: path) else {
            throw ModelError(.io, "cannot write the training log", file: path)
        }
        handle.seekToEndOfFile()
        self.handle = handle
    }

    public func record(step: Int, epoch: Int, loss: Double, averageLoss: Double, learningRate: Double) {
        handle.write(Data("\(step),\(epoch),\(pythonFloat(loss)),\(pythonFloat(averageLoss)),\(pythonFloat(learningRate))\n".utf8))
    }

    deinit { try? handle.close() }
}
