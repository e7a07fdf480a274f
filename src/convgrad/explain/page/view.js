/* convgrad explain page: drawing and interaction.
 *
 * Every array (x, w, b, y in the forward row; dY, dX, dW, db in the backward row) is drawn as
 * blocks -- one per (example, channel) or (out channel, in channel), 3-D and up as 2-D slices --
 * on canvases. Hovering a cell focuses it, a click pins it (click again to release):
 *   y, dX, dW, db  -> its contributors: the two operands of every term (orange, blue);
 *   x              -> where it is read: the outputs y (orange) and the weights w it meets (blue);
 *   w              -> the inputs x it multiplies (orange) and the outputs y it feeds (blue);
 *   dY             -> where it flows back: the dX (orange) and dW (blue) entries it reaches;
 *   b              -> the output channel it is added to.
 * The side panel lists the terms and the element's formula with its numbers.
 * Large planes are drawn at a readable scale as a window (WINDOW cells a side) with a minimap of
 * the whole plane beside it: the windows of the other arrays follow the highlighted cells, "go to"
 * (and the page's opening element, `convgrad explain --at`) moves every window and scrolls to it.
 * window.convgradPage exposes the state for tests.
 */
"use strict";

const ConvGradView = (() => {
  const R = ConvGradRelation;
  const COLORS = {
    cell: "#ffffff", pad: "#ececec", copy: "#e3ecd3", unread: "#b9b9b9",
    a: "#f28e2b", b: "#4e79a7", element: "#e15759", grid: "#8c8c8c", padRead: "#f28e2b",
  };
  const NAMES = { x: "x", w: "w", b: "b", y: "y", dy: "dY", dx: "dX", dw: "dW", db: "db" };
  const QUANTITY_OF = { y: "output", dx: "grad_input", dw: "grad_weight", db: "grad_bias" };
  const MAX_LISTED = 400;
  const MAX_PIXELS = 4000000; // canvas pixels drawn per array (and at most MAX_BLOCKS blocks); the rest is reached by "go to"
  const MAX_BLOCKS = 256;
  const WINDOW = 20; // a plane with a longer side is shown as a window of this many cells a side ...
  const WINDOW_1D = 40; // ... (a row: this many cells)
  const WINDOW_PX = 16; // ... at this many pixels a cell, with a minimap
  const MINIMAP = 120; // pixels: the longer side of a minimap

  let spec = null;
  let initialConfig = null;
  let config = null;
  let blocks = new Map(); // key "name|lead" -> block
  let arrays = new Map(); // name -> {lay, rows, cols (the full extent), win: {rows, cols} or null, blocks, minimap}
  let focus = null; // {name, index, pinned}
  let light = { roles: new Map(), labels: new Map(), byBlock: new Map(), terms: [], title: "", formula: "", lines: [] };

  const $ = (id) => document.getElementById(id);
  const key = (name, idx) => `${name}|${idx.join(",")}`;

  // -- configuration form --------------------------------------------------------------------------
  function parseInts(text, name) {
    const parts = String(text).split(/[,x ]+/).filter((p) => p.trim() !== "");
    const values = parts.map(Number);
    if (!values.length || values.some((v) => !Number.isInteger(v))) {
      throw new R.ConfigError(`${name}: expected comma-separated integers, got '${text}'`);
    }
    return values;
  }
  const intOrList = (text, name) => {
    const v = parseInts(text, name);
    return v.length === 1 ? v[0] : v;
  };
  function parsePadding(text) {
    text = String(text).trim();
    if (text === "same" || text === "valid") return text;
    const items = text.split(",").map((part) => {
      if (part.includes(":")) {
        const pair = part.split(":").map(Number);
        if (pair.length !== 2 || pair.some((v) => !Number.isInteger(v))) throw new R.ConfigError(`padding: bad pair '${part}'`);
        return pair;
      }
      const v = Number(part);
      if (!Number.isInteger(v)) throw new R.ConfigError(`padding: expected integers, low:high pairs, 'same' or 'valid', got '${text}'`);
      return v;
    });
    return items.length === 1 && !Array.isArray(items[0]) ? items[0] : items;
  }
  const fmtList = (v) => (Array.isArray(v) ? v.map((p) => (Array.isArray(p) ? p.join(":") : p)).join(",") : String(v));

  function fillForm(cfg) {
    $("f-input").value = cfg.input.join(",");
    $("f-weight").value = cfg.weight.join(",");
    $("f-stride").value = fmtList(cfg.stride);
    $("f-padding").value = fmtList(cfg.padding);
    $("f-dilation").value = fmtList(cfg.dilation);
    $("f-groups").value = String(cfg.groups);
    $("f-mode").value = cfg.padding_mode;
    $("f-transposed").checked = !!cfg.transposed;
    $("f-output-padding").value = fmtList(cfg.output_padding);
  }

  function readForm() {
    return {
      input: parseInts($("f-input").value, "input"),
      weight: parseInts($("f-weight").value, "weight"),
      stride: intOrList($("f-stride").value, "stride"),
      padding: parsePadding($("f-padding").value),
      dilation: intOrList($("f-dilation").value, "dilation"),
      groups: Number($("f-groups").value),
      padding_mode: $("f-mode").value,
      transposed: $("f-transposed").checked,
      output_padding: intOrList($("f-output-padding").value, "output_padding"),
    };
  }

  function cliCommand(cfg) {
    const parts = [`convgrad explain --input ${cfg.input.join(",")} --weight ${cfg.weight.join(",")}`];
    if (fmtList(cfg.stride) !== "1") parts.push(`--stride ${fmtList(cfg.stride)}`);
    if (fmtList(cfg.padding) !== "0") parts.push(`--padding ${fmtList(cfg.padding)}`);
    if (fmtList(cfg.dilation) !== "1") parts.push(`--dilation ${fmtList(cfg.dilation)}`);
    if (cfg.groups !== 1) parts.push(`--groups ${cfg.groups}`);
    if (cfg.padding_mode !== "zeros") parts.push(`--padding-mode ${cfg.padding_mode}`);
    if (cfg.transposed) parts.push("--transposed");
    if (fmtList(cfg.output_padding) !== "0") parts.push(`--output-padding ${fmtList(cfg.output_padding)}`);
    return parts.join(" ");
  }

  // -- index bookkeeping ---------------------------------------------------------------------------
  function layoutOf(name) {
    const shape = spec.shapes[name];
    if (name === "b" || name === "db") return { leadShape: [], rows: [0, 1], cols: [0, shape[0]], nd: 0 };
    const nd = shape.length - 2;
    const leadShape = shape.slice(0, 2).concat(shape.slice(2, 2 + Math.max(nd - 2, 0)));
    let ranges = shape.slice(2).map((h) => [0, h]);
    if (name === "x" && !spec.transposed) ranges = shape.slice(2).map((h, d) => [-spec.padding[d][0], h + spec.padding[d][1]]);
    if (nd === 1) return { leadShape, rows: [0, 1], cols: ranges[0], nd, ranges };
    return { leadShape, rows: ranges[nd - 2], cols: ranges[nd - 1], nd, ranges };
  }

  function cellOf(name, index, nd) {
    if (name === "b" || name === "db") return { lead: [], row: 0, col: index[0] };
    if (nd === 1) return { lead: index.slice(0, 2), row: 0, col: index[2] };
    return { lead: index.slice(0, -2), row: index[index.length - 2], col: index[index.length - 1] };
  }

  function indexOf(block, row, col) {
    if (block.name === "b" || block.name === "db") return [col];
    if (block.nd === 1) return block.lead.concat([col]);
    return block.lead.concat([row, col]);
  }

  const userIndex = (name, idx) => (spec.batched || ["w", "dw", "b", "db"].includes(name) ? idx : idx.slice(1));
  const show = (name, idx) => `${NAMES[name]}[${userIndex(name, idx).join(", ")}]`;

  // -- drawing -----------------------------------------------------------------------------------
  function baseColor(block, row, col) {
    const s = spec;
    if (block.name === "x" && !s.transposed) {
      const pos = block.nd === 1 ? [col] : block.lead.slice(2).concat([row, col]);
      const inside = pos.every((p, d) => p >= 0 && p < s.inputSize[d]);
      if (!inside) return s.mode === "zeros" ? COLORS.pad : COLORS.copy;
      if (pos.some((p, d) => s.zeroPositions[d].includes(p))) return COLORS.unread;
    }
    if (block.name === "dx" && !s.transposed) {
      const pos = block.nd === 1 ? [col] : block.lead.slice(2).concat([row, col]);
      if (pos.some((p, d) => s.zeroPositions[d].includes(p))) return COLORS.unread;
    }
    if ((block.name === "y" || block.name === "dy") && s.transposed) {
      const pos = block.nd === 1 ? [col] : block.lead.slice(2).concat([row, col]);
      if (pos.some((p, d) => s.zeroPositions[d].includes(p))) return COLORS.unread;
    }
    return COLORS.cell;
  }

  const rgbOf = (hex) => [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16));

  function paintBase(block) {
    // base colours and grid, once per block; later redraws start from this image
    const { ctx, px, rows, cols } = block;
    const nr = rows[1] - rows[0];
    const nc = cols[1] - cols[0];
    if (px >= 5) {
      for (let r = 0; r < nr; r++) {
        for (let c = 0; c < nc; c++) {
          ctx.fillStyle = baseColor(block, rows[0] + r, cols[0] + c);
          ctx.fillRect(c * px, r * px, px, px);
        }
      }
      gridLines(block, 0, 0, nr, nc);
    } else {
      // small cells (big arrays): write the pixels directly, far faster than one fillRect per cell
      const img = ctx.createImageData(block.canvas.width, block.canvas.height);
      const width = block.canvas.width;
      const cache = new Map();
      for (let r = 0; r < nr; r++) {
        for (let c = 0; c < nc; c++) {
          const hex = baseColor(block, rows[0] + r, cols[0] + c);
          if (!cache.has(hex)) cache.set(hex, rgbOf(hex));
          const [R, G, B] = cache.get(hex);
          for (let y = r * px; y < (r + 1) * px; y++) {
            let o = (y * width + c * px) * 4;
            for (let x = 0; x < px; x++, o += 4) {
              img.data[o] = R;
              img.data[o + 1] = G;
              img.data[o + 2] = B;
              img.data[o + 3] = 255;
            }
          }
        }
      }
      ctx.putImageData(img, 0, 0);
    }
    block.base = ctx.getImageData(0, 0, block.canvas.width, block.canvas.height);
  }

  function gridLines(block, r0, c0, nr, nc) {
    const { ctx, px } = block;
    ctx.strokeStyle = COLORS.grid;
    ctx.lineWidth = 1;
    ctx.beginPath();
    for (let r = r0; r <= r0 + nr; r++) {
      ctx.moveTo(c0 * px, r * px + 0.5);
      ctx.lineTo((c0 + nc) * px, r * px + 0.5);
    }
    for (let c = c0; c <= c0 + nc; c++) {
      ctx.moveTo(c * px + 0.5, r0 * px);
      ctx.lineTo(c * px + 0.5, (r0 + nr) * px);
    }
    ctx.stroke();
  }

  function hatch(ctx, x, y, px) {
    ctx.save();
    ctx.beginPath();
    ctx.rect(x, y, px, px);
    ctx.clip();
    ctx.strokeStyle = COLORS.padRead;
    ctx.lineWidth = Math.max(1, px / 8);
    ctx.beginPath();
    for (let t = -px; t < px; t += Math.max(3, px / 3)) {
      ctx.moveTo(x + t, y + px);
      ctx.lineTo(x + t + px, y);
    }
    ctx.stroke();
    ctx.restore();
  }

  function drawBlock(block) {
    const { ctx, px, rows, cols } = block;
    ctx.putImageData(block.base, 0, 0);
    const cells = light.byBlock.get(key(block.name, block.lead)) || [];
    const inside = cells.filter((cell) => cell.row >= rows[0] && cell.row < rows[1] && cell.col >= cols[0] && cell.col < cols[1]);
    for (const cell of inside) {
      const x = (cell.col - cols[0]) * px;
      const y = (cell.row - rows[0]) * px;
      if (cell.role === "pad") hatch(ctx, x, y, px);
      else {
        ctx.fillStyle = COLORS[cell.role];
        ctx.fillRect(x, y, px, px);
      }
      if (px >= 5) gridLines(block, cell.row - rows[0], cell.col - cols[0], 1, 1);
    }
    if (px >= 14 && light.terms.length <= 80) {
      ctx.font = `bold ${Math.floor(px * 0.45)}px sans-serif`;
      ctx.textAlign = "center";
      ctx.textBaseline = "middle";
      for (const cell of inside) {
        if (!cell.labels || !cell.labels.length) continue;
        ctx.fillStyle = cell.role === "pad" ? "#7a4a12" : "#ffffff";
        const text = cell.labels.slice(0, 2).join(",") + (cell.labels.length > 2 ? "…" : "");
        ctx.fillText(text, (cell.col - cols[0]) * px + px / 2, (cell.row - rows[0]) * px + px / 2 + 1);
      }
    }
  }

  function blockLabel(name, lead) {
    if (!lead.length) return "";
    const extra = lead.slice(2).map((v, d) => ` d${d}=${v}`).join("");
    if (name === "w" || name === "dw") {
      const g = Math.floor(lead[0] / (spec.shapes.w[0] / spec.groups));
      return (spec.transposed ? `c=${lead[0]} o=${lead[1]}` : `o=${lead[0]} c=${lead[1]}`) + extra + (spec.groups > 1 ? ` · g${g}` : "");
    }
    const g = Math.floor(lead[1] / (spec.shapes[name][1] / spec.groups));
    return (spec.batched ? `n=${lead[0]} ` : "") + `c=${lead[1]}` + extra + (spec.groups > 1 ? ` · g${g}` : "");
  }

  function buildArray(name, container) {
    const lay = layoutOf(name);
    const section = document.createElement("section");
    section.className = `array array-${name}`;
    section.dataset.array = name;
    const h = document.createElement("h3");
    h.textContent = `${NAMES[name]}  (${(spec.batched || ["w", "dw", "b", "db"].includes(name) ? spec.shapes[name] : spec.shapes[name].slice(1)).join(", ")})`;
    section.appendChild(h);
    const wrap = document.createElement("div");
    wrap.className = lay.nd === 1 ? "blocks blocks-1d" : "blocks";
    section.appendChild(wrap);
    const nr = lay.rows[1] - lay.rows[0];
    const nc = lay.cols[1] - lay.cols[0];
    const side = lay.nd >= 2 ? WINDOW : WINDOW_1D;
    const arr = { name, lay, rows: lay.rows, cols: lay.cols, win: null, blocks: [] };
    let px = Math.max(3, Math.min(24, Math.floor(260 / Math.max(nr, nc, 1))));
    if (nr > side || nc > side) {
      // a large plane: a readable window (centred at first) and a minimap of the whole plane
      px = WINDOW_PX;
      const centre = (r, n) => {
        const lo = r[0] + Math.max(0, Math.floor((r[1] - r[0] - n) / 2));
        return [lo, lo + Math.min(n, r[1] - r[0])];
      };
      arr.win = { rows: centre(lay.rows, side), cols: centre(lay.cols, side) };
    }
    arrays.set(name, arr);
    const shownRows = arr.win ? arr.win.rows : lay.rows;
    const shownCols = arr.win ? arr.win.cols : lay.cols;
    const allLeads = R.product(lay.leadShape.map(R.range));
    const perBlock = ((shownRows[1] - shownRows[0]) * px + 1) * ((shownCols[1] - shownCols[0]) * px + 1);
    const leads = allLeads.slice(0, Math.max(1, Math.min(MAX_BLOCKS, Math.floor(MAX_PIXELS / perBlock))));
    if (allLeads.length > leads.length) {
      const note = document.createElement("div");
      note.className = "note";
      note.textContent = `${allLeads.length - leads.length} more blocks not drawn (their cells are still counted in every term list; reach them with "go to")`;
      section.appendChild(note);
    }
    for (const lead of leads) {
      const div = document.createElement("div");
      div.className = "block";
      if (spec.groups > 1 && lead.length) {
        const g = name === "w" || name === "dw" ? Math.floor(lead[0] / (spec.shapes.w[0] / spec.groups)) : Math.floor(lead[1] / (spec.shapes[name][1] / spec.groups));
        div.classList.add(`group-${g % 8}`);
      }
      const label = document.createElement("div");
      label.className = "label";
      label.textContent = blockLabel(name, lead);
      div.appendChild(label);
      const canvas = document.createElement("canvas");
      canvas.width = (shownCols[1] - shownCols[0]) * px + 1;
      canvas.height = (shownRows[1] - shownRows[0]) * px + 1;
      canvas.dataset.array = name;
      canvas.dataset.lead = lead.join(",");
      div.appendChild(canvas);
      wrap.appendChild(div);
      const block = { name, lead, rows: shownRows, cols: shownCols, px, nd: lay.nd, canvas, ctx: canvas.getContext("2d") };
      blocks.set(key(name, lead), block);
      arr.blocks.push(block);
      canvas.addEventListener("mousemove", (ev) => onMove(block, ev));
      canvas.addEventListener("mouseleave", () => {
        if (focus && !focus.pinned) setFocus(null);
      });
      canvas.addEventListener("click", (ev) => onClick(block, ev));
      paintBase(block);
    }
    if (arr.win) {
      addMinimap(arr, section);
      drawMinimap(arr);
    }
    container.appendChild(section);
  }

  function cellAt(block, ev) {
    const rect = block.canvas.getBoundingClientRect();
    const c = Math.floor((ev.clientX - rect.left) / block.px);
    const r = Math.floor((ev.clientY - rect.top) / block.px);
    if (r < 0 || c < 0 || r >= block.rows[1] - block.rows[0] || c >= block.cols[1] - block.cols[0]) return null;
    return indexOf(block, block.rows[0] + r, block.cols[0] + c);
  }

  function onMove(block, ev) {
    if (focus && focus.pinned) return;
    const idx = cellAt(block, ev);
    if (!idx) return;
    if (focus && focus.name === block.name && focus.index.join(",") === idx.join(",")) return;
    setFocus({ name: block.name, index: idx, pinned: false });
  }

  function onClick(block, ev) {
    const idx = cellAt(block, ev);
    if (!idx) return;
    if (focus && focus.pinned && focus.name === block.name && focus.index.join(",") === idx.join(",")) {
      setFocus({ name: block.name, index: idx, pinned: false });
      return;
    }
    setFocus({ name: block.name, index: idx, pinned: true });
  }

  // -- what a focused cell highlights --------------------------------------------------------------
  function isPadding(name, idx) {
    if (name !== "x" || spec.transposed) return false;
    return idx.slice(2).some((p, d) => p < 0 || p >= spec.inputSize[d]);
  }

  function elementFormula(name, idx) {
    const s = spec;
    const nd = s.nd;
    const d = R.range(nd);
    const lin = (coef, v, c) => {
      let out = coef === 0 ? "" : `${coef === 1 ? "" : coef + "·"}${v}`;
      if (c) out += out ? (c > 0 ? ` + ${c}` : ` − ${-c}`) : `${c}`;
      return out || "0";
    };
    const kn = nd === 1 ? ["k"] : d.map((i) => `k${i}`);
    const iname = nd === 1 ? ["i"] : d.map((i) => `i${i}`);
    if (name === "y" && !s.transposed || name === "dx" && s.transposed) {
      // gather: R[n, a, i] = Σ_b Σ_k K[a, b, k] · A[n, chan, i*S + k*D - P_lo]
      const [n, a, ...i] = idx;
      const g = Math.floor(a / s.outPerGroup);
      const chan = s.inPerGroup > 1 ? `${g * s.inPerGroup} + c` : `${g * s.inPerGroup}`;
      const pos = d.map((j) => lin(s.dilation[j], kn[j], i[j] * s.stride[j] - s.padLo[j])).join(", ");
      const A = name === "y" ? "x" : "dY";
      return `${show(name, idx)} = ${name === "y" ? `b[${a}] + ` : ""}Σ_c Σ_k w[${a}, c, ${kn.join(", ")}] · ${A}[${n}, ${chan}, ${pos}]` +
        `   (c = 0..${s.inPerGroup - 1}, ${kn.map((k, j) => `${k} = 0..${s.kernel[j] - 1}`).join(", ")}; ` +
        `${s.transposed ? "cropped positions" : s.mode === "zeros" ? "padding" : s.mode + " padding copies"} ${s.mode === "zeros" || s.transposed ? "read 0" : "real cells"})`;
    }
    if (name === "dx" && !s.transposed || name === "y" && s.transposed) {
      const [n, c, ...h] = idx;
      const bounds = d.map((j) => {
        const t = h[j] + s.padLo[j];
        const lo = Math.max(0, Math.ceil((t - s.dilation[j] * (s.kernel[j] - 1)) / s.stride[j]));
        const hi = Math.min(s.outputSize[j] - 1, Math.floor(t / s.stride[j]));
        return `${iname[j]} = max(0, ⌈(${t} − ${s.dilation[j] * (s.kernel[j] - 1)})/${s.stride[j]}⌉)..min(${s.outputSize[j] - 1}, ⌊${t}/${s.stride[j]}⌋) = ${lo}..${hi}` +
          (s.dilation[j] > 1 ? ` (only i with ${t} − ${s.stride[j]}·i divisible by ${s.dilation[j]})` : "");
      });
      const taps = d.map((j) => `${s.dilation[j] > 1 ? "(" : ""}${h[j] + s.padLo[j]} − ${s.stride[j] === 1 ? "" : s.stride[j] + "·"}${iname[j]}${s.dilation[j] > 1 ? `)/${s.dilation[j]}` : ""}`);
      const A = name === "dx" ? "dY" : "x";
      return `${show(name, idx)} = ${name === "y" ? `b[${c}] + ` : ""}Σ_{o in group} Σ_i ${A}[${n}, o, ${iname.join(", ")}] · w[o, ${c % s.inPerGroup}, ${taps.join(", ")}]` +
        (s.mode !== "zeros" ? ` (and the same for every border position holding a copy of it)` : "") + "\n" + bounds.join("\n");
    }
    if (name === "dw") {
      const [a, b, ...k] = idx;
      const chan = Math.floor(a / s.outPerGroup) * s.inPerGroup + b;
      const pos = d.map((j) => lin(s.stride[j], iname[j], k[j] * s.dilation[j] - s.padLo[j])).join(", ");
      return s.transposed
        ? `${show(name, idx)} = Σ_n Σ_i x[n, ${a}, ${iname.join(", ")}] · dY[n, ${chan}, ${pos}]`
        : `${show(name, idx)} = Σ_n Σ_i dY[n, ${a}, ${iname.join(", ")}] · x[n, ${chan}, ${pos}]`;
    }
    if (name === "db") return `${show(name, idx)} = Σ_n Σ_i dY[n, ${idx[0]}, i]`;
    return "";
  }

  function listLine(out, line) {
    // the panel lists the first MAX_LISTED terms; building millions of strings would stall the page
    out.listed += 1;
    if (out.lines.length < MAX_LISTED) out.lines.push(line);
  }

  function computeLight(f) {
    const out = { roles: new Map(), labels: new Map(), terms: [], title: "", formula: "", lines: [], listed: 0 };
    if (!f) return out;
    const { name, index } = f;
    let numbered = true; // term numbers are drawn only for a few terms; do not collect them otherwise
    const addRole = (arr, idx, role, t) => {
      const k = key(arr, idx);
      if (!out.roles.has(k) || role === "element") out.roles.set(k, role);
      if (t !== undefined && numbered) {
        if (!out.labels.has(k)) out.labels.set(k, []);
        out.labels.get(k).push(t);
      }
    };
    if (name in QUANTITY_OF) {
      const q = QUANTITY_OF[name];
      const terms = R.contributors(spec, q, index);
      numbered = terms.length <= 80;
      const first = { output: "x", grad_input: "dy", grad_weight: "x", grad_bias: "dy" }[q];
      const second = { output: "w", grad_input: "w", grad_weight: "dy", grad_bias: null }[q];
      const pads = R.paddedReads(spec, q, index);
      let p = 0;
      terms.forEach((t, j) => {
        if (q === "grad_bias") {
          addRole(first, t, "a", j + 1);
          listLine(out, show("dy", t));
          return;
        }
        let [a, b] = t;
        if (a === null) {
          addRole(first, pads[p][0], "pad", j + 1);
          p += 1;
        } else addRole(first, a, "a", j + 1);
        addRole(second, b, "b", j + 1);
        listLine(out, `${a === null ? "pad" : show(first, a)} · ${show(second, b)}`);
      });
      addRole(name, index, "element");
      out.terms = terms;
      const parts = second ? `${NAMES[first]}·${NAMES[second]}` : NAMES[first];
      out.title = `${show(name, index)} = sum of ${terms.length} ${second ? "product" : "entr"}${terms.length === 1 ? (second ? "" : "y") : (second ? "s" : "ies")} ${parts}`;
      out.formula = elementFormula(name, index);
      if (name === "y") out.lines.unshift(`b[${index[1]}]`);  // the bias line is extra to the count
      return out;
    }
    if (name === "x") {
      if (isPadding(name, index)) {
        const pos = index.slice(2);
        const src = pos.map((p, d) => R.sourceIndex(p, spec.inputSize[d], spec.mode));
        addRole("x", index, "element");
        if (src.includes(null)) {
          out.title = `padding position (${pos.join(", ")}): zero padding`;
          out.formula = "Every term that reads it contributes 0, and it has no gradient.";
        } else {
          addRole("x", index.slice(0, 2).concat(src), "a");
          out.title = `padding position (${pos.join(", ")}) holds a copy of ${show("x", index.slice(0, 2).concat(src))}`;
          out.formula = `${spec.mode} padding: the gradient of this border cell is added onto the cell it copies.`;
        }
        return out;
      }
      const terms = R.contributors(spec, "grad_input", index);
      numbered = terms.length <= 80;
      terms.forEach(([dyi, wi], j) => {
        addRole("y", dyi, "a", j + 1);
        addRole("w", wi, "b", j + 1);
        listLine(out, `${show("y", dyi)} += ${show("x", index)} · ${show("w", wi)}`);
      });
      addRole("x", index, "element");
      out.terms = terms;
      out.title = `${show("x", index)} is read by ${terms.length} term${terms.length === 1 ? "" : "s"}`;
      out.formula = terms.length
        ? `Chain rule: ${show("dx", index)} = Σ dY[…]·w[…] over exactly these pairs (the outputs that read it, times the weight it met there).`
        : `No output reads it: ${show("dx", index)} is exactly 0.`;
      return out;
    }
    if (name === "w") {
      const terms = R.contributors(spec, "grad_weight", index);
      numbered = terms.length <= 80;
      const pads = R.paddedReads(spec, "grad_weight", index);
      let p = 0;
      terms.forEach(([xi, dyi], j) => {
        if (xi === null) {
          addRole("x", pads[p][0], "pad", j + 1);
          p += 1;
        } else addRole("x", xi, "a", j + 1);
        addRole("y", dyi, "b", j + 1);
        listLine(out, `${show("y", dyi)} += ${xi === null ? "pad" : show("x", xi)} · ${show("w", index)}`);
      });
      addRole("w", index, "element");
      out.terms = terms;
      out.title = `${show("w", index)} is used by ${terms.length} term${terms.length === 1 ? "" : "s"}`;
      out.formula = `Chain rule: ${show("dw", index)} = Σ x[…]·dY[…] over exactly these pairs.`;
      return out;
    }
    if (name === "dy") {
      const terms = R.contributors(spec, "output", index);
      numbered = terms.length <= 80;
      terms.forEach(([xi, wi], j) => {
        if (xi !== null) addRole("dx", xi, "a", j + 1);
        addRole("dw", wi, "b", j + 1);
        listLine(out, `${xi === null ? "(padding: no dX)" : show("dx", xi) + " += " + show("dy", index) + " · w[…]"}  ·  ${show("dw", wi)} += x[…] · ${show("dy", index)}`);
      });
      addRole("dy", index, "element");
      out.terms = terms;
      out.title = `${show("dy", index)} flows back through the ${terms.length} terms of ${show("y", index)}`;
      out.formula = "Each term x·w of y passes dY·w to dX of its x and x·dY to dW of its w.";
      return out;
    }
    if (name === "b") {
      const shape = spec.shapes.y;
      for (const rest of R.product([R.range(shape[0])].concat(shape.slice(2).map(R.range)))) {
        addRole("y", [rest[0], index[0]].concat(rest.slice(1)), "a");
      }
      addRole("b", index, "element");
      out.title = `b[${index[0]}] is added to every element of output channel ${index[0]}`;
      out.formula = `so db[${index[0]}] = Σ_n Σ_i dY[n, ${index[0]}, i]`;
      return out;
    }
    return out;
  }

  function groupByBlock(l) {
    // the highlighted cells of each block, so a redraw touches only those; per array their bounding
    // box and (up to a limit) their places, for the windows and minimaps
    l.byBlock = new Map();
    l.byArray = new Map();
    const nds = {};
    for (const [k, role] of l.roles) {
      const bar = k.indexOf("|");
      const name = k.slice(0, bar);
      const idx = k.slice(bar + 1).split(",").map(Number);
      if (!(name in nds)) nds[name] = layoutOf(name).nd;
      const cell = cellOf(name, idx, nds[name]);
      if (!l.byArray.has(name)) l.byArray.set(name, { r0: Infinity, r1: -Infinity, c0: Infinity, c1: -Infinity, cells: [] });
      const box = l.byArray.get(name);
      box.r0 = Math.min(box.r0, cell.row);
      box.r1 = Math.max(box.r1, cell.row);
      box.c0 = Math.min(box.c0, cell.col);
      box.c1 = Math.max(box.c1, cell.col);
      if (role === "element") box.element = cell;
      if (box.cells.length < 20000) box.cells.push({ row: cell.row, col: cell.col, role });
      const bk = key(name, cell.lead);
      if (!blocks.has(bk)) continue; // not drawn
      if (!l.byBlock.has(bk)) l.byBlock.set(bk, []);
      l.byBlock.get(bk).push({ row: cell.row, col: cell.col, role, labels: l.labels.get(k) });
    }
    return l;
  }

  function setFocus(f, moveAll = false) {
    // moveAll: every window moves to show the highlighted cells (go to, --at); otherwise the array
    // under the pointer keeps its window and the others follow
    const before = [...light.byBlock.keys()];
    focus = f;
    light = groupByBlock(computeLight(f));
    const moved = new Set();
    for (const [name, box] of light.byArray) {
      if (!moveAll && f && name === f.name) continue;
      const arr = arrays.get(name);
      if (!arr || !arr.win) continue;
      const { rows, cols } = arr.win;
      if (box.r0 >= rows[0] && box.r1 < rows[1] && box.c0 >= cols[0] && box.c1 < cols[1]) continue;
      const target = box.element || { row: Math.floor((box.r0 + box.r1) / 2), col: Math.floor((box.c0 + box.c1) / 2) };
      if (setWindow(name, target.row, target.col)) moved.add(name);
    }
    for (const bk of new Set([...before, ...light.byBlock.keys()])) {
      const block = blocks.get(bk);
      if (block && !moved.has(block.name)) drawBlock(block);
    }
    for (const arr of arrays.values()) if (arr.win) drawMinimap(arr);
    renderPanel();
  }

  // -- windows onto large planes ---------------------------------------------------------------------
  function setWindow(name, row, col) {
    // centre the array's window on (row, col), clamped to the plane; repaint its blocks if it moved
    const arr = arrays.get(name);
    if (!arr || !arr.win) return false;
    const place = (extent, size, at) => {
      const lo = Math.max(extent[0], Math.min(extent[1] - size, at - Math.floor(size / 2)));
      return [lo, lo + size];
    };
    const rows = place(arr.rows, arr.win.rows[1] - arr.win.rows[0], row);
    const cols = place(arr.cols, arr.win.cols[1] - arr.win.cols[0], col);
    if (rows[0] === arr.win.rows[0] && cols[0] === arr.win.cols[0]) return false;
    arr.win = { rows, cols };
    for (const block of arr.blocks) {
      block.rows = rows;
      block.cols = cols;
      paintBase(block);
      drawBlock(block);
    }
    arr.caption.textContent = windowCaption(arr);
    drawMinimap(arr);
    return true;
  }

  function windowCaption(arr) {
    const { rows, cols } = arr.win;
    const span = (r) => `${r[0]}–${r[1] - 1}`;
    const size = `${arr.rows[1] - arr.rows[0]}×${arr.cols[1] - arr.cols[0]}`;
    return (arr.lay.nd >= 2 ? `rows ${span(rows)}, columns ${span(cols)} of ${size}` : `positions ${span(cols)} of ${arr.cols[1] - arr.cols[0]}`) +
      " shown (click the map to move)";
  }

  function minimapScale(arr) {
    const nr = arr.rows[1] - arr.rows[0];
    const nc = arr.cols[1] - arr.cols[0];
    const scale = Math.min(4, MINIMAP / Math.max(nr, nc));
    return { sx: scale, sy: arr.lay.nd >= 2 ? scale : Math.max(6, scale), nr, nc };
  }

  function drawMinimap(arr) {
    // the whole plane (of the first block), the highlighted cells of every block, and the window
    const { canvas } = arr.minimap;
    const ctx = canvas.getContext("2d");
    const { sx, sy, nr, nc } = minimapScale(arr);
    if (!arr.minimap.base) {
      const img = ctx.createImageData(canvas.width, canvas.height);
      const probe = { name: arr.name, lead: arr.blocks.length ? arr.blocks[0].lead : [], nd: arr.lay.nd };
      for (let y = 0; y < canvas.height; y++) {
        const row = arr.rows[0] + Math.min(nr - 1, Math.floor(y / sy));
        for (let x = 0; x < canvas.width; x++) {
          const col = arr.cols[0] + Math.min(nc - 1, Math.floor(x / sx));
          const [r, g, b] = rgbOf(baseColor(probe, row, col));
          const o = (y * canvas.width + x) * 4;
          img.data[o] = r;
          img.data[o + 1] = g;
          img.data[o + 2] = b;
          img.data[o + 3] = 255;
        }
      }
      arr.minimap.base = img;
    }
    ctx.putImageData(arr.minimap.base, 0, 0);
    const box = light.byArray ? light.byArray.get(arr.name) : null;
    if (box) {
      for (const cell of box.cells) {
        ctx.fillStyle = cell.role === "pad" ? COLORS.padRead : COLORS[cell.role];
        const w = Math.max(2, sx);
        const h = Math.max(2, sy);
        ctx.fillRect((cell.col - arr.cols[0]) * sx - (w - sx) / 2, (cell.row - arr.rows[0]) * sy - (h - sy) / 2, w, h);
      }
    }
    const { rows, cols } = arr.win;
    ctx.strokeStyle = "#222";
    ctx.lineWidth = 1.5;
    ctx.strokeRect((cols[0] - arr.cols[0]) * sx + 0.75, (rows[0] - arr.rows[0]) * sy + 0.75,
      (cols[1] - cols[0]) * sx - 1.5, (rows[1] - rows[0]) * sy - 1.5);
  }

  function addMinimap(arr, section) {
    const { sx, sy, nr, nc } = minimapScale(arr);
    const div = document.createElement("div");
    div.className = "window";
    const canvas = document.createElement("canvas");
    canvas.className = "minimap";
    canvas.dataset.array = arr.name;
    canvas.width = Math.max(1, Math.round(nc * sx));
    canvas.height = Math.max(1, Math.round(nr * sy));
    canvas.title = "the whole plane: click to move the window";
    canvas.addEventListener("click", (ev) => {
      const rect = canvas.getBoundingClientRect();
      setWindow(arr.name, arr.rows[0] + Math.floor((ev.clientY - rect.top) / sy), arr.cols[0] + Math.floor((ev.clientX - rect.left) / sx));
    });
    arr.caption = document.createElement("span");
    arr.caption.className = "caption";
    arr.caption.textContent = windowCaption(arr);
    div.appendChild(canvas);
    div.appendChild(arr.caption);
    section.insertBefore(div, section.querySelector(".blocks"));
    arr.minimap = { canvas, base: null };
  }

  function scrollToCell(name, index) {
    // bring the element's cell to the middle of the window (its array's window already shows it)
    const lay = layoutOf(name);
    const cell = cellOf(name, index, lay.nd);
    const block = blocks.get(key(name, cell.lead));
    const target = block ? null : document.querySelector(`.array-${name}`);
    if (!block) {
      if (target) target.scrollIntoView({ block: "center" });
      return;
    }
    const rect = block.canvas.getBoundingClientRect();
    const x = rect.left + window.scrollX + (cell.col - block.cols[0] + 0.5) * block.px;
    const y = rect.top + window.scrollY + (cell.row - block.rows[0] + 0.5) * block.px;
    window.scrollTo({ left: Math.max(0, x - window.innerWidth / 2), top: Math.max(0, y - window.innerHeight / 2), behavior: "instant" });
  }

  function renderPanel() {
    const title = $("element-title");
    const formula = $("formula");
    const list = $("terms");
    list.innerHTML = "";
    if (!focus) {
      title.textContent = "Hover any cell of x, w, b, y, dY, dX, dW or db; click to pin it.";
      formula.textContent = "";
      $("pin").textContent = "";
      return;
    }
    $("pin").textContent = focus.pinned ? "pinned (click it again to release)" : "";
    title.textContent = light.title;
    formula.textContent = light.formula;
    for (const line of light.lines) {
      const li = document.createElement("li");
      li.textContent = line;
      list.appendChild(li);
    }
    if (light.listed > MAX_LISTED) {
      const li = document.createElement("li");
      li.className = "more";
      li.textContent = `… ${light.listed - MAX_LISTED} more`;
      list.appendChild(li);
    }
  }

  // -- summary -------------------------------------------------------------------------------------
  function summary() {
    const s = spec;
    const shape = (n) => (s.batched || ["w", "b"].includes(n) ? s.shapes[n] : s.shapes[n].slice(1)).join(", ");
    const lines = [
      `${s.transposed ? "conv_transpose" : "conv"}${s.nd}d: x (${shape("x")}), w (${shape("w")}) → y (${shape("y")})`,
    ];
    for (let d = 0; d < s.nd; d++) {
      const [lo, hi] = s.padding[d];
      const name = s.nd === 1 ? "" : `dim ${d}: `;
      if (!s.transposed) {
        const h = s.inputSize[d];
        const tail = s.unreadTail[d];
        const unread = s.zeroPositions[d];
        lines.push(
          `${name}K_eff = ${s.dilation[d]}·(${s.kernel[d]}−1)+1 = ${s.keff[d]};  H_out = ⌊(${h} + ${lo} + ${hi} − ${s.keff[d]})/${s.stride[d]}⌋ + 1 = ${s.outputSize[d]};  ` +
          `padding (${lo}, ${hi})${s.same ? " from 'same'" : ""}, used (${lo}, ${Math.max(0, s.usedPadHi[d])});  unread tail ${tail}` +
          (unread.length ? `;  never read (gradient 0): ${unread.join(", ")}` : ""));
      } else {
        const hin = s.outputSize[d];
        const op = s.unreadTail[d];
        lines.push(
          `${name}H_out = (${hin}−1)·${s.stride[d]} − ${lo} − ${hi} + ${s.dilation[d]}·(${s.kernel[d]}−1) + ${op} + 1 = ${s.inputSize[d]}` +
          (s.zeroPositions[d].length ? `;  never written (bias only): ${s.zeroPositions[d].join(", ")}` : ""));
      }
    }
    $("summary").textContent = lines.join("\n");
  }

  // -- build ---------------------------------------------------------------------------------------
  function build(cfg) {
    spec = R.makeSpec(cfg);
    config = cfg;
    blocks = new Map();
    arrays = new Map();
    focus = null;
    light = groupByBlock(computeLight(null));
    const fwd = $("row-forward");
    const bwd = $("row-backward");
    fwd.innerHTML = "";
    bwd.innerHTML = "";
    for (const n of ["x", "w", "y", "b"]) buildArray(n, fwd);
    for (const n of ["dy", "dx", "dw", "db"]) buildArray(n, bwd);
    summary();
    renderPanel();
    const same = JSON.stringify(cfg) === JSON.stringify(initialConfig);
    $("derivation-note").textContent = same
      ? ""
      : `This text is for the configuration the page was made with. For the current one run: ${cliCommand(cfg)}`;
    $("error").textContent = "";
  }

  function apply() {
    let cfg;
    try {
      cfg = readForm();
      R.makeSpec(cfg);
    } catch (err) {
      // the grids still show the last good configuration: so does the form again
      fillForm(config);
      $("error").textContent = `${err.message} — not applied: the form shows the current configuration again`;
      return false;
    }
    build(cfg);
    return true;
  }

  function goTo(text) {
    // "dx 0,1,4,4" (names: x w b y dy dx dw db, any case): pin that element
    const m = String(text).trim().match(/^([a-zA-Z]+)\s*\[?\s*([-0-9,\s]*)\]?$/);
    const name = m ? m[1].toLowerCase() : "";
    if (!m || !(name in NAMES)) throw new R.ConfigError(`go to: expected an array name (x, w, b, y, dY, dX, dW, db) and an index, e.g. dX 0,1,4,4; got '${text}'`);
    let idx = m[2].split(/[,\s]+/).filter((v) => v !== "").map(Number);
    const shape = spec.shapes[name];
    if (!spec.batched && !["w", "dw", "b", "db"].includes(name)) idx = [0].concat(idx);
    if (idx.length !== shape.length || idx.some((v, d) => !Number.isInteger(v) || v < 0 || v >= shape[d])) {
      throw new R.ConfigError(`go to: ${NAMES[name]} has shape (${userIndex(name, shape).join(", ")}); index out of range or of the wrong length`);
    }
    setFocus({ name, index: idx, pinned: true }, true);
    scrollToCell(name, idx);
  }

  function start(cfg, at) {
    initialConfig = cfg;
    fillForm(cfg);
    build(cfg);
    if (at) {
      // `convgrad explain --format html --at ...`: open on that element, pinned and centred
      setFocus({ name: at.name, index: at.index, pinned: true }, true);
      scrollToCell(at.name, at.index);
    }
    $("goto").addEventListener("submit", (ev) => {
      ev.preventDefault();
      try {
        goTo($("goto-text").value);
        $("goto-error").textContent = "";
      } catch (err) {
        $("goto-error").textContent = err.message;
      }
    });
    $("config").addEventListener("submit", (ev) => {
      ev.preventDefault();
      apply();
    });
    $("reset").addEventListener("click", () => {
      fillForm(initialConfig);
      build(initialConfig);
    });
  }

  // -- hooks for tests -----------------------------------------------------------------------------
  window.convgradPage = {
    spec: () => spec,
    config: () => config,
    focus: () => focus,
    // every highlighted cell as "array|i,j,k|role", one per line (a string: cheap to hand over)
    highlighted: () => [...light.roles].map(([k, role]) => `${k}|${role}`).join("\n"),
    panelText: () => ({ title: $("element-title").textContent, formula: $("formula").textContent, terms: [...$("terms").children].map((li) => li.textContent) }),
    cellCenter: (array, index) => {
      const lay = layoutOf(array);
      const cell = cellOf(array, index, lay.nd);
      const block = blocks.get(key(array, cell.lead));
      if (!block) return null;
      const arr = arrays.get(array);
      if (arr.win && !(cell.row >= arr.win.rows[0] && cell.row < arr.win.rows[1] && cell.col >= arr.win.cols[0] && cell.col < arr.win.cols[1])) {
        setWindow(array, cell.row, cell.col);
      }
      block.canvas.scrollIntoView({ block: "center", inline: "center" });
      const rect = block.canvas.getBoundingClientRect();
      return {
        x: rect.left + (cell.col - block.cols[0]) * block.px + block.px / 2,
        y: rect.top + (cell.row - block.rows[0]) * block.px + block.px / 2,
        px: block.px,
      };
    },
    cellBox: (array, index) => {
      // the cell's top-left corner in document coordinates (no scrolling), and its size
      const lay = layoutOf(array);
      const cell = cellOf(array, index, lay.nd);
      const block = blocks.get(key(array, cell.lead));
      if (!block) return null;
      const rect = block.canvas.getBoundingClientRect();
      return {
        x: rect.left + window.scrollX + (cell.col - block.cols[0]) * block.px,
        y: rect.top + window.scrollY + (cell.row - block.rows[0]) * block.px,
        px: block.px,
      };
    },
    goTo,
    // the shown part of a windowed array: {rows: [lo, hi), cols: [lo, hi)} (null: all of it is drawn)
    window: (array) => (arrays.get(array).win ? { rows: [...arrays.get(array).win.rows], cols: [...arrays.get(array).win.cols] } : null),
    setFocus: (array, index, pinned) => setFocus({ name: array, index, pinned: !!pinned }),
    apply,
    build,
  };

  return { start, build };
})();
