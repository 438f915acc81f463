import XCTest
final class ToolTestsPlaceholder: XCTestCase { func testNothing() {} }
