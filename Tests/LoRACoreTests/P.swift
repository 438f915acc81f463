import XCTest
final class LoRACoreTestsPlaceholder: XCTestCase { func testNothing() {} }
