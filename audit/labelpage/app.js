// The labelling page. Every piece of corpus text or URL goes into the DOM through textContent, never as markup.
"use strict";

const LABELS = ["misaligned_ai", "aligned_ai", "neutral_ai", "no_ai"];
const POPULATIONS = {  // estimate.json's populations, as the estimate panel heads them
  documents: "documents", gated_documents: "documents that name AI", passages: "passages",
  gate_rejected_documents: "documents the gate passed over"};
let state = null;
let busy = false;

const $ = (id) => document.getElementById(id);

function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined) node.textContent = text;
  if (className) node.className = className;
  return node;
}

async function call(path, body) {
  const options = body === undefined ? {} : {
    method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)};
  const response = await fetch(path, options);
  const data = await response.json();
  if (!response.ok) throw new Error(data.error || response.statusText);
  return data;
}

async function act(path, body) {
  if (busy) return;
  busy = true;
  try {
    show(await call(path, body));
    $("error").hidden = true;
  } catch (error) {
    $("error").textContent = String(error.message || error);
    $("error").hidden = false;
  } finally {
    busy = false;
  }
}

function show(next) {
  state = next;
  $("run").textContent = `${state.run} · labelling as ${state.labeller}`;
  const share = state.total ? state.answered / state.total : 1;
  $("bar").style.width = `${(100 * share).toFixed(1)}%`;
  $("count").textContent = `${state.answered} of ${state.total} answered` +
    (state.skipped ? ` · ${state.skipped} skipped` : "");
  const item = state.item;
  document.body.dataset.answered = String(state.answered);
  document.body.dataset.row = item ? String(item.row) : "";
  $("item").hidden = !item;
  $("done").hidden = Boolean(item);
  if (item) {
    $("unit").textContent = item.unit === "document" ? "whole document" : "passage";
    $("domain").textContent = item.domain || "–";
    $("url").textContent = item.url || "–";
    $("note").textContent = item.note || "";
    $("note").hidden = !item.note;
    $("before").textContent = item.before;
    $("passage").textContent = item.passage;
    $("after").textContent = item.after;
    $("doc").scrollTop = 0;
    $("passage").scrollIntoView({block: "center"});
    window.scrollTo(0, 0);
  }
  $("last").textContent = state.last
    ? `Last answer: ${state.last.label}. Press m to see what the model said.` : "";
}

function buildChoices(guide) {
  const list = $("choices");
  const dl = $("guide");
  LABELS.forEach((label, i) => {
    const item = el("li");
    const button = el("button");
    button.type = "button";
    button.dataset.label = label;
    button.append(el("kbd", String(i + 1)), el("strong", label), el("span", guide[label], "def"));
    button.addEventListener("click", () => answer(label));
    item.append(button);
    list.append(item);
    dl.append(el("dt", `${i + 1}  ${label}`), el("dd", guide[label]));
  });
}

function answer(label) {
  if (state && state.item) act("api/answer", {row: state.item.row, label});
}

async function revealModel() {
  if (!state || !state.last) return;
  try {
    const model = await call(`api/model?row=${state.last.row}`);
    const score = model.score === null ? "" : ` (p ${model.score.toFixed(2)})`;
    $("last").textContent = `Last answer: ${state.last.label} · the model said ${model.model_label}${score}` +
      ` · stratum ${model.stratum}`;
  } catch (error) {
    $("last").textContent = String(error.message || error);
  }
}

function pct(x) {
  return x === null || x === undefined ? "n/a" : `${(100 * x).toFixed(2)}%`;
}

async function estimateNow() {
  const panel = $("estimate");
  panel.hidden = false;
  panel.replaceChildren(el("p", "Recomputing estimate.json and the report…", "muted"));
  try {
    const result = await call("api/estimate", {});
    const table = el("table");
    const head = el("tr");
    // Only the populations this sample has (one drawn before there were document strata has no documents).
    const keys = Object.keys(POPULATIONS).filter((key) => LABELS.some((l) => (result.labels[l] || {})[key]));
    for (const title of ["label", ...keys.map((key) => `${POPULATIONS[key]} (95% interval)`)]) {
      head.append(el("th", title));
    }
    table.append(head);
    for (const label of LABELS) {
      const units = result.labels[label] || {};
      const row = el("tr");
      row.append(el("td", label));
      for (const key of keys) {
        const entry = units[key];
        row.append(el("td", entry ? `${pct(entry.estimate)} [${pct(entry.ci95[0])}, ${pct(entry.ci95[1])}]` : "–"));
      }
      table.append(row);
    }
    const agreement = result.agreement;
    const lines = [`${result.labelled} of ${result.sample_rows} sampled rows have a settled label` +
      ` (${agreement.disputed_rows} disputed). estimate.json and the report are rewritten.`];
    for (const pair of agreement.pairs) {
      const kappa = pair.kappa === null ? "n/a" : pair.kappa.toFixed(2);
      lines.push(`${pair.labellers[0]} vs ${pair.labellers[1]}: ${pair.rows} shared rows, Cohen's kappa ${kappa}`);
    }
    panel.replaceChildren(el("h2", "Estimate from the labels so far"), table, ...lines.map((t) => el("p", t, "muted")));
    panel.scrollIntoView({block: "nearest"});
  } catch (error) {
    panel.replaceChildren(el("p", String(error.message || error), "error"));
  }
}

function toggleHelp(open) {
  $("help").hidden = open === undefined ? !$("help").hidden : !open;
}

document.addEventListener("keydown", (event) => {
  if (event.ctrlKey || event.metaKey || event.altKey) return;
  const key = event.key;
  if (key === "?") { toggleHelp(); event.preventDefault(); return; }
  if (key === "Escape") { toggleHelp(false); $("estimate").hidden = true; window.scrollTo(0, 0); return; }
  if (!$("help").hidden) return;
  if (key >= "1" && key <= "4") answer(LABELS[Number(key) - 1]);
  else if (key === "s" && state && state.item) act("api/skip", {row: state.item.row});
  else if (key === "u") act("api/undo", {});
  else if (key === "m") revealModel();
  else if (key === "e") estimateNow();
  else return;
  event.preventDefault();
});

call("api/state").then((first) => {
  buildChoices(first.guide);
  show(first);
  document.body.dataset.ready = "true";
}).catch((error) => {
  $("error").textContent = String(error.message || error);
  $("error").hidden = false;
});
