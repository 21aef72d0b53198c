"""Bar charts drawn on the server as SVG geometry: no chart library, and every bar is a link."""
WIDTH, HEIGHT, GAP = 600, 120, 2


def bars(rows, value="value", label="day"):
    """rows -> [{x, y, w, h, label, value}] scaled to the largest value, in a WIDTH x HEIGHT box."""
    if not rows:
        return []
    top = max(row[value] for row in rows) or 1
    step = WIDTH / len(rows)
    out = []
    for i, row in enumerate(rows):
        h = round(HEIGHT * row[value] / top, 1)
        out.append({"x": round(i * step, 1), "y": round(HEIGHT - h, 1), "w": round(max(step - GAP, 1), 1), "h": h,
                    "label": row[label], "value": row[value], "qs": row.get("qs", "")})
    return out
