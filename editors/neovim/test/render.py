"""Draws a tmux pane captured with colours (`tmux capture-pane -e -p`) to a PNG with Pillow.

Usage: render.py PANE.ans OUT.png [--expect GHOST_TEXT] [--cursor X,Y]

With --expect, it also checks that GHOST_TEXT is on screen in a colour other than the code
before it (the ghost text is grey), and exits 1 if not.
"""

import argparse
import re
import sys

from PIL import Image, ImageDraw, ImageFont

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf"
FONT_BOLD = "/usr/share/fonts/truetype/dejavu/DejaVuSansMono-Bold.ttf"
DEFAULT_FG = (224, 226, 234)  # Neovim's NvimLightGrey2
DEFAULT_BG = (20, 22, 27)  # Neovim's NvimDarkGrey2
ANSI16 = [
    (0, 0, 0), (205, 49, 49), (13, 188, 121), (229, 229, 16),
    (36, 114, 200), (188, 63, 188), (17, 168, 205), (229, 229, 229),
    (102, 102, 102), (241, 76, 76), (35, 209, 139), (245, 245, 67),
    (59, 142, 234), (214, 112, 214), (41, 184, 219), (255, 255, 255),
]
SGR = re.compile(r"\x1b\[([0-9;:]*)m")


def xterm256(n):
    if n < 16:
        return ANSI16[n]
    if n < 232:
        n -= 16
        steps = [0, 95, 135, 175, 215, 255]
        return (steps[n // 36], steps[(n // 6) % 6], steps[n % 6])
    level = 8 + 10 * (n - 232)
    return (level, level, level)


def parse(text):
    """Returns rows of cells (char, fg, bg, bold); fg/bg None means the default colour."""
    rows = []
    state = {"fg": None, "bg": None, "bold": False, "reverse": False}
    for line in text.split("\n"):
        row = []
        pos = 0
        for match in SGR.finditer(line):
            add_text(row, line[pos:match.start()], state)
            apply_sgr(state, match.group(1))
            pos = match.end()
        add_text(row, line[pos:], state)
        rows.append(row)
    while rows and not rows[-1]:
        rows.pop()
    return rows


def add_text(row, text, state):
    fg, bg = state["fg"], state["bg"]
    if state["reverse"]:
        fg, bg = bg or DEFAULT_BG, fg or DEFAULT_FG
    for ch in text:
        if ch >= " ":
            row.append((ch, fg, bg, state["bold"]))


def apply_sgr(state, params):
    codes = [int(c) if c else 0 for c in re.split("[;:]", params)] if params else [0]
    i = 0
    while i < len(codes):
        c = codes[i]
        if c == 0:
            state.update(fg=None, bg=None, bold=False, reverse=False)
        elif c == 1:
            state["bold"] = True
        elif c == 22:
            state["bold"] = False
        elif c == 7:
            state["reverse"] = True
        elif c == 27:
            state["reverse"] = False
        elif 30 <= c <= 37:
            state["fg"] = ANSI16[c - 30]
        elif 90 <= c <= 97:
            state["fg"] = ANSI16[c - 90 + 8]
        elif 40 <= c <= 47:
            state["bg"] = ANSI16[c - 40]
        elif 100 <= c <= 107:
            state["bg"] = ANSI16[c - 100 + 8]
        elif c == 39:
            state["fg"] = None
        elif c == 49:
            state["bg"] = None
        elif c in (38, 48) and i + 1 < len(codes):
            key = "fg" if c == 38 else "bg"
            if codes[i + 1] == 5 and i + 2 < len(codes):
                state[key] = xterm256(codes[i + 2])
                i += 2
            elif codes[i + 1] == 2 and i + 4 < len(codes):
                state[key] = tuple(codes[i + 2:i + 5])
                i += 4
        i += 1


def render(rows, out, width, cursor=None):
    font = ImageFont.truetype(FONT, 16)
    bold = ImageFont.truetype(FONT_BOLD, 16)
    ascent, descent = font.getmetrics()
    cw, ch = round(font.getlength("M")), ascent + descent + 3
    pad = 14
    image = Image.new("RGB", (width * cw + 2 * pad, len(rows) * ch + 2 * pad), DEFAULT_BG)
    draw = ImageDraw.Draw(image)
    for y, row in enumerate(rows):
        for x, (char, fg, bg, is_bold) in enumerate(row):
            left, top = pad + x * cw, pad + y * ch
            if bg is not None:
                draw.rectangle([left, top, left + cw - 1, top + ch - 1], fill=bg)
            if char != " ":
                draw.text((left, top + 1), char, font=bold if is_bold else font, fill=fg or DEFAULT_FG)
    if cursor:
        x, y = cursor
        draw.rectangle([pad + x * cw, pad + y * ch, pad + x * cw + 1, pad + (y + 1) * ch - 1], fill=DEFAULT_FG)
    image.save(out, optimize=True)


def check(rows, ghost):
    for row in rows:
        line = "".join(c[0] for c in row)
        at = line.find(ghost)
        if at > 0:
            ghost_fg = {row[i][1] for i in range(at, at + len(ghost)) if row[i][0] != " "}
            code_fg = {row[i][1] for i in range(0, at) if row[i][0] not in " 0123456789"}
            if ghost_fg and not ghost_fg & code_fg:
                return True
            print(f"ghost colours {ghost_fg} overlap code colours {code_fg}", file=sys.stderr)
    return False


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("pane")
    parser.add_argument("out")
    parser.add_argument("--expect")
    parser.add_argument("--cursor", help="X,Y of the cursor cell, drawn as a bar")
    args = parser.parse_args()
    with open(args.pane, encoding="utf-8") as f:
        rows = parse(f.read())
    width = max(len(r) for r in rows)
    cursor = tuple(int(n) for n in args.cursor.split(",")) if args.cursor else None
    render(rows, args.out, width, cursor)
    if args.expect and not check(rows, args.expect):
        print(f"the ghost text {args.expect!r} is not on screen in its own colour", file=sys.stderr)
        return 1
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
