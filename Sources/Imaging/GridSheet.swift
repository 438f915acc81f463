/// A comparison grid as A1111's X/Y/Z plot draws it: column labels above,
/// row labels on the left, an optional title above and a legend below, cells
/// in reading order. Cells may be missing (drawn as a labelled gray box) or
/// marked (a dark red box with the mark's text, e.g. a LoRA that holds NaN).
public struct GridSheet {
    public var columns: [String]
    public var rows: [String]
    public var title: String?
    public var legend: String?
    /// Cell images, row-major (rows × columns); nil = not rendered.
    public var cells: [Bitmap?]
    public var cellWidth: Int
    public var cellHeight: Int
    /// Text for cells drawn as marked boxes, by cell index (their image is nil).
    public var marks: [Int: String]

    public init(columns: [String], rows: [String], title: String? = nil, legend: String? = nil, cells: [Bitmap?],
                cellWidth: Int, cellHeight: Int, marks: [Int: String] = [:]) {
        precondition(cells.count == max(1, columns.count) * max(1, rows.count), "cells do not fill the grid")
        self.columns = columns
        self.rows = rows
        self.title = title
        self.legend = legend
        self.cells = cells
        self.cellWidth = cellWidth
        self.cellHeight = cellHeight
        self.marks = marks
    }

    /// Label size that stays legible on small cells and modest on large ones.
    public static func fontSize(cellWidth: Int) -> Int { max(12, min(40, cellWidth / 14)) }

    public func render(fontPath: String) throws(ImageError) -> Bitmap {
        let size = GridSheet.fontSize(cellWidth: cellWidth)
        let font = try Font(path: fontPath, pixelSize: size)
        let small = try Font(path: fontPath, pixelSize: max(11, size * 3 / 4))
        let pad = max(4, size / 2)
        let gap = max(2, cellWidth / 128)
        let nx = max(1, columns.count), ny = max(1, rows.count)
        // Row labels get the width of the widest label, between a third of a cell and one cell.
        let leftWidth = rows.isEmpty ? 0
            : min(cellWidth, max(cellWidth / 3, (rows.map { font.width(of: $0) }.max() ?? 0) + 2 * pad))
        let topLines = columns.map { font.wrap($0, maxWidth: cellWidth - 2 * pad).count }.max() ?? 0
        let topHeight = columns.isEmpty ? 0 : min(4, topLines) * font.lineHeight + 2 * pad
        let gridWidth = leftWidth + nx * cellWidth + (nx - 1) * gap
        let titleLines = title.map { font.wrap($0, maxWidth: gridWidth - 2 * pad).count } ?? 0
        let titleHeight = title == nil ? 0 : min(3, titleLines) * font.lineHeight + 2 * pad
        let legendLines = legend.map { small.wrap($0, maxWidth: gridWidth - 2 * pad) } ?? []
        let legendHeight = legendLines.isEmpty ? 0 : legendLines.count * small.lineHeight + 2 * pad
        let height = titleHeight + topHeight + ny * cellHeight + (ny - 1) * gap + legendHeight
        var canvas = Bitmap(width: gridWidth, height: height)
        if let title {
            font.drawBlock(title, into: &canvas, x: pad, y: pad, width: gridWidth - 2 * pad, height: titleHeight - 2 * pad)
        }
        let top = titleHeight + topHeight
        for (i, label) in columns.enumerated() {
            let x = leftWidth + i * (cellWidth + gap)
            font.drawBlock(label, into: &canvas, x: x + pad, y: titleHeight + pad, width: cellWidth - 2 * pad, height: topHeight - 2 * pad)
        }
        for (j, label) in rows.enumerated() {
            let y = top + j * (cellHeight + gap)
            font.drawBlock(label, into: &canvas, x: pad, y: y, width: leftWidth - 2 * pad, height: cellHeight)
        }
        for j in 0..<ny {
            for i in 0..<nx {
                let x = leftWidth + i * (cellWidth + gap), y = top + j * (cellHeight + gap)
                if let mark = marks[j * nx + i] {
                    canvas.fill(x: x, y: y, width: cellWidth, height: cellHeight, color: RGB(110, 20, 20))
                    font.drawBlock(mark, into: &canvas, x: x, y: y, width: cellWidth, height: cellHeight, color: RGB(255, 230, 230))
                } else if let image = cells[j * nx + i] {
                    canvas.draw(image.width == cellWidth && image.height == cellHeight ? image
                                : image.resized(width: cellWidth, height: cellHeight), x: x, y: y)
                } else {
                    canvas.fill(x: x, y: y, width: cellWidth, height: cellHeight, color: .lightGray)
                    font.drawBlock("not rendered", into: &canvas, x: x, y: y, width: cellWidth, height: cellHeight, color: .gray)
                }
            }
        }
        var y = top + ny * cellHeight + (ny - 1) * gap + pad
        for line in legendLines {
            small.draw(line, into: &canvas, x: pad, y: y, color: RGB(64, 64, 64))
            y += small.lineHeight
        }
        return canvas
    }

    /// Several grids on one sheet: side by side while the sheet stays under
    /// `maxWidth`, wrapping into rows of grids beyond that.
    public static func combine(_ grids: [Bitmap], maxWidth: Int) -> Bitmap {
        guard grids.count > 1 else { return grids.first ?? Bitmap(width: 1, height: 1) }
        let gap = max(16, (grids.map(\.width).max() ?? 0) / 40)
        var rows: [[Bitmap]] = [[]]
        var width = 0
        for grid in grids {
            if !rows[rows.count - 1].isEmpty && width + gap + grid.width > maxWidth {
                rows.append([])
                width = 0
            }
            width += (rows[rows.count - 1].isEmpty ? 0 : gap) + grid.width
            rows[rows.count - 1].append(grid)
        }
        let rowWidths = rows.map { row in row.map(\.width).reduce(0, +) + gap * (row.count - 1) }
        let rowHeights = rows.map { row in row.map(\.height).max() ?? 0 }
        var sheet = Bitmap(width: rowWidths.max() ?? 1, height: rowHeights.reduce(0, +) + gap * (rows.count - 1))
        var y = 0
        for (r, row) in rows.enumerated() {
            var x = 0
            for grid in row {
                sheet.draw(grid, x: x, y: y)
                x += grid.width + gap
            }
            y += rowHeights[r] + gap
        }
        return sheet
    }
}
