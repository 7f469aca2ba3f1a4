"""PNG checks for tests/cli/test_plot.sh, Python standard library only (zlib), no PIL needed.

usage: plot_png_check.py FILE stats
         -> "WIDTH HEIGHT VARIANCE NCOLOURS" (variance of the grey level over all pixels)
       plot_png_check.py FILE pixel RAD X Y [X Y ...]
         -> one line "R G B" per point: median colour of the (2 RAD+1)^2 block centred on
            pixel (X, Y) (0 = top-left)
       plot_png_check.py FILE has R/G/B ...
         -> exit 1 unless every colour occurs in at least 20 pixels
       plot_png_check.py FILE dark
         -> number of pixels darker than grey level 60 (coastlines, frame, text)
Decodes 8-bit greyscale, RGB, RGBA and palette PNGs (non-interlaced), all five row filters."""
import struct
import sys
import zlib


def decode(path):
    data = open(path, "rb").read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise SystemExit(f"{path}: not a PNG (bad signature)")
    pos, idat, palette = 8, [], None
    width = height = depth = ctype = interlace = None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if zlib.crc32(kind + body) & 0xFFFFFFFF != struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])[0]:
            raise SystemExit(f"{path}: CRC error in chunk {kind!r}")
        if kind == b"IHDR":
            width, height, depth, ctype, _, _, interlace = struct.unpack(">IIBBBBB", body)
        elif kind == b"PLTE":
            palette = [tuple(body[i:i + 3]) for i in range(0, len(body), 3)]
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
        pos += 12 + length
    if depth != 8 or interlace != 0 or ctype not in (0, 2, 3, 6):
        raise SystemExit(f"{path}: unsupported PNG (depth {depth}, colour type {ctype}, interlace {interlace})")
    channels = {0: 1, 2: 3, 3: 1, 6: 4}[ctype]
    raw = zlib.decompress(b"".join(idat))
    stride = width * channels
    rows, prev = [], bytearray(stride)
    for y in range(height):
        f = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - channels] if i >= channels else 0
            b = prev[i]
            c = prev[i - channels] if i >= channels else 0
            if f == 1:
                line[i] = (line[i] + a) & 255
            elif f == 2:
                line[i] = (line[i] + b) & 255
            elif f == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                line[i] = (line[i] + pred) & 255
        rows.append(line)
        prev = line

    def rgb(x, y):
        line = rows[y]
        if ctype == 0:
            return (line[x],) * 3
        if ctype == 3:
            return palette[line[x]]
        return tuple(line[x * channels:x * channels + 3])

    return width, height, rgb


def main():
    path, cmd = sys.argv[1], sys.argv[2]
    width, height, rgb = decode(path)
    if cmd == "stats":
        n = s = s2 = 0
        colours = set()
        for y in range(height):
            for x in range(width):
                r, g, b = rgb(x, y)
                v = 0.299 * r + 0.587 * g + 0.114 * b
                n += 1
                s += v
                s2 += v * v
                colours.add((r, g, b))
        mean = s / n
        print(width, height, f"{s2 / n - mean * mean:.3f}", len(colours))
    elif cmd == "pixel":
        rad = int(sys.argv[3])
        pts = [int(v) for v in sys.argv[4:]]
        for x, y in zip(pts[0::2], pts[1::2]):
            block = [rgb(min(max(x + dx, 0), width - 1), min(max(y + dy, 0), height - 1))
                     for dy in range(-rad, rad + 1) for dx in range(-rad, rad + 1)]
            print(*[sorted(c[k] for c in block)[len(block) // 2] for k in range(3)])
    elif cmd == "has":
        counts = {}
        for y in range(height):
            for x in range(width):
                c = rgb(x, y)
                counts[c] = counts.get(c, 0) + 1
        missing = [w for w in sys.argv[3:] if counts.get(tuple(int(t) for t in w.split("/")), 0) < 20]
        if missing:
            print("missing colours:", *missing)
            sys.exit(1)
        print("all colours present")
    elif cmd == "dark":
        print(sum(1 for y in range(height) for x in range(width) if sum(rgb(x, y)) < 180))
    else:
        raise SystemExit(f"unknown command {cmd}")


main()
