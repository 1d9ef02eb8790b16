// semret serve: the one script of the pages. The query form searches by GET (a stored image or
// words: the URL can be shared) and posts the file when the query is an uploaded image.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const form = document.getElementById("query-form");
  if (!form) return;
  const pick = (value) => {
    const radio = form.querySelector(`input[name=source][value=${value}]`);
    if (radio) radio.checked = true;
  };
  form.querySelector("#image_id").addEventListener("input", () => pick("image"));
  form.querySelector("#words").addEventListener("input", () => pick("words"));
  form.querySelector("#file").addEventListener("change", () => pick("upload"));
  form.addEventListener("submit", () => {
    const source = (form.querySelector("input[name=source]:checked") || {}).value;
    const fields = { image: "image_id", words: "words", upload: "file" };
    for (const [kind, id] of Object.entries(fields)) {
      const input = form.querySelector(`#${id}`);
      if (source && kind !== source) input.disabled = true;  // only the chosen query is sent
    }
    if (source === "upload") {
      form.method = "post";
      form.action = form.dataset.uploadAction;
    }
    window.setTimeout(() => { for (const id of Object.values(fields)) form.querySelector(`#${id}`).disabled = false; }, 0);
  });
});
