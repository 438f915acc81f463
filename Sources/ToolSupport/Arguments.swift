import ArgumentParser
import LoRACore

extension Severity: ExpressibleByArgument {}
