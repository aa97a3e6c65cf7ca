/* Chartbox pages: progressive enhancement only. Every form and link works without this file;
   with it, uploads show progress per file, images and PDFs open in an in-page viewer and
   deletions ask in a dialog. Loaded as a same-origin script (the pages' CSP allows no inline code). */
(function () {
  "use strict";
  document.documentElement.classList.add("js");

  var VIEWER_PAGES = 20;
  var PAGE_BOX = "1280x1280";  // a stored rendition size (app/web/display.py PAGE_BOX)

  // The page's language: base.html lists the translations of the strings below (keyed by the
  // English, which is also the fallback); `%(name)s` takes values[name].
  var STRINGS = (function () {
    var node = document.getElementById("chartbox-strings");
    try { return node ? JSON.parse(node.textContent) : {}; } catch (e) { return {}; }
  })();

  function t(english, values) {
    var text = STRINGS[english] || english;
    return text.replace(/%\((\w+)\)s/g, function (all, key) { return values && key in values ? values[key] : all; });
  }

  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.content : "";
  }

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function humanSize(bytes) {
    var units = ["bytes", "KB", "MB", "GB"], i = 0;
    while (bytes >= 1024 && i < units.length - 1) { bytes /= 1024; i++; }
    return i === 0 ? t("%(num)s bytes", { num: bytes }) : bytes.toFixed(1).replace(/\.0$/, "") + " " + units[i];
  }

  /* ---- Uploads: one request per file, so each has its own progress bar and its own error ---- */

  function extensionOf(name) {
    var dot = name.lastIndexOf(".");
    return dot > 0 ? name.slice(dot + 1).toLowerCase() : "";
  }

  // What the page can tell before sending a byte: too large, or a kind of file never accepted.
  function refusalOf(form, file) {
    var max = parseInt(form.dataset.maxBytes, 10);
    if (max && file.size > max) {
      return t("the file is %(size)s; the limit is %(limit)s.", { size: humanSize(file.size), limit: form.dataset.maxLabel });
    }
    var input = form.querySelector('input[type="file"]');
    var accepted = (input.getAttribute("accept") || "").split(",").filter(function (a) { return a.charAt(0) === "."; })
      .map(function (a) { return a.slice(1).toLowerCase(); });
    var ext = extensionOf(file.name);
    if (accepted.length && accepted.indexOf(ext) < 0) {
      return (ext ? t("“.%(ext)s” files are not accepted here.", { ext: ext }) : t("Files without an ending are not accepted here.")) + " " +
        (form.dataset.acceptLabel || "");
    }
    return null;
  }

  function eta(loaded, total, started) {
    var seconds = (Date.now() - started) / 1000;
    if (seconds < 1 || !loaded) return "";
    var left = Math.round((total - loaded) / (loaded / seconds));
    return left < 1 ? "" : " · " + (left < 60 ? t("about %(num)s s left", { num: left }) : t("about %(num)s min left", { num: Math.round(left / 60) }));
  }

  function button(label, className, name) {
    var b = el("button", "btn btn-small " + className, label);
    b.type = "button";
    if (name) b.setAttribute("aria-label", name);
    return b;
  }

  function uploadOne(form, file, item) {
    return new Promise(function (resolve) {
      var bar = item.querySelector("progress");
      var status = item.querySelector(".upload-status");
      var actions = item.querySelector(".upload-actions");
      actions.textContent = "";
      item.classList.remove("is-failed", "is-done", "is-cancelled");
      var xhr = new XMLHttpRequest();
      var finish = function (state, message, retry) {
        item.classList.add(state === "done" ? "is-done" : state === "cancelled" ? "is-cancelled" : "is-failed");
        status.textContent = message;
        actions.textContent = "";
        if (state !== "done") {
          if (retry) {
            var again = button(t("Retry"), "btn-ghost", t("Retry %(name)s", { name: file.name }));
            again.addEventListener("click", function () { uploadOne(form, file, item).then(function (ok) { if (ok) settle(form); }); });
            actions.appendChild(again);
          }
          var dismiss = button(t("Dismiss"), "btn-ghost", t("Dismiss %(name)s", { name: file.name }));
          dismiss.addEventListener("click", function () { item.remove(); summarize(form); });
          actions.appendChild(dismiss);
        }
        summarize(form);
        resolve(state === "done");
      };
      var refusal = refusalOf(form, file);
      if (refusal) { finish("refused", t("Not uploaded: %(reason)s", { reason: refusal }), false); return; }
      var data = new FormData();
      ["csrf_token", "category", "target_type", "target_id"].forEach(function (name) {
        var field = form.elements.namedItem(name);
        if (field) data.append(name, field.value);
      });
      data.append("files", file, file.name);
      var started = Date.now();
      xhr.open("POST", form.action);
      xhr.setRequestHeader("Accept", "application/json");
      xhr.setRequestHeader("X-CSRFToken", csrfToken());
      xhr.upload.addEventListener("progress", function (event) {
        if (!event.lengthComputable) return;
        bar.max = event.total;
        bar.value = event.loaded;
        status.textContent = t("%(done)s of %(total)s", { done: humanSize(event.loaded), total: humanSize(event.total) }) + eta(event.loaded, event.total, started);
      });
      xhr.addEventListener("load", function () {
        var body = null;
        try { body = JSON.parse(xhr.responseText); } catch (e) { body = null; }
        if (xhr.status === 201) { finish("done", t("Uploaded")); return; }
        if (xhr.status === 401) { finish("failed", t("Your session has ended. Reload the page and sign in again."), false); return; }
        var message = body && body.files && body.files[0] && body.files[0].error;
        message = message || (body && body.message) || t("The upload did not go through (error %(status)s). Try again.", { status: xhr.status });
        // Refused for what the file is: trying again changes nothing. Busy or failing: it may.
        finish("failed", t("Not uploaded: %(reason)s", { reason: message }), xhr.status === 429 || xhr.status >= 500);
      });
      xhr.addEventListener("error", function () {
        finish("failed", t("Not uploaded: the connection was lost. Check your network and try again."), true);
      });
      xhr.addEventListener("abort", function () { finish("cancelled", t("Cancelled"), true); });
      var cancel = button(t("Cancel"), "btn-ghost", t("Cancel %(name)s", { name: file.name }));
      cancel.addEventListener("click", function () { xhr.abort(); });
      actions.appendChild(cancel);
      status.textContent = t("Starting…");
      xhr.send(data);
    });
  }

  // "3 uploaded, 1 not uploaded" under the queue, and for screen readers.
  function summarize(form) {
    var queue = form.querySelector(".upload-queue");
    var summary = form.querySelector(".upload-summary");
    var items = queue.querySelectorAll(".upload-item");
    var done = queue.querySelectorAll(".upload-item.is-done").length + (parseInt(queue.dataset.uploaded || "0", 10));
    var failed = queue.querySelectorAll(".upload-item.is-failed").length;
    var waiting = items.length - queue.querySelectorAll(".is-done, .is-failed, .is-cancelled").length;
    if (!summary) return;
    var parts = [];
    if (done) parts.push(t("%(num)s uploaded", { num: done }));
    if (failed) parts.push(t("%(num)s not uploaded", { num: failed }));
    if (waiting) parts.push(t("%(num)s to go", { num: waiting }));
    summary.textContent = parts.join(", ");
    summary.hidden = !parts.length;
  }

  // Once a file went up: the lists show it, and its card makes way (counted in the summary).
  function settle(form) {
    var category = form.elements.namedItem("category");
    if (category && category.value === "user_avatar") { window.location.reload(); return Promise.resolve(); }
    return refreshRegions().then(function () {
      var queue = form.querySelector(".upload-queue");
      var done = queue.querySelectorAll(".upload-item.is-done");
      queue.dataset.uploaded = String(parseInt(queue.dataset.uploaded || "0", 10) + done.length);
      done.forEach(function (item) { item.remove(); });
      summarize(form);
      var summary = form.querySelector(".upload-summary");
      announce(summary ? summary.textContent : t("Upload finished."));
    });
  }

  function refreshRegions() {
    return fetch(window.location.href, { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (resp) { return resp.ok ? resp.text() : null; })
      .then(function (html) {
        if (!html) return;
        var fresh = new DOMParser().parseFromString(html, "text/html");
        document.querySelectorAll("[data-region]").forEach(function (region) {
          var replacement = region.id && fresh.getElementById(region.id);
          if (replacement) region.replaceWith(document.importNode(replacement, true));
        });
        enhanceMenus(document);
      });
  }

  function uploadFiles(form, files) {
    if (!files.length) return;
    var queue = form.querySelector(".upload-queue");
    queue.dataset.uploaded = "0";
    var items = Array.prototype.map.call(files, function (file) {
      var item = el("li", "upload-item");
      item.appendChild(el("span", "upload-name", file.name));
      item.appendChild(el("span", "upload-status", t("Waiting…")));
      item.appendChild(el("span", "upload-actions"));
      var bar = el("progress");
      bar.max = 1; bar.value = 0;
      bar.setAttribute("aria-label", t("Uploading %(name)s", { name: file.name }));
      item.appendChild(bar);
      queue.appendChild(item);
      return item;
    });
    // What the page can refuse is refused at once, not after the files before it.
    var sending = [];
    Array.prototype.forEach.call(files, function (file, i) {
      if (refusalOf(form, file)) uploadOne(form, file, items[i]);
      else sending.push(i);
    });
    summarize(form);
    var anyDone = false;
    var chain = Promise.resolve();
    sending.forEach(function (i) {
      chain = chain.then(function () {
        return uploadOne(form, files[i], items[i]).then(function (ok) { anyDone = anyDone || ok; });
      });
    });
    chain.then(function () { if (anyDone) settle(form); else summarize(form); });
  }

  var liveRegion = null;
  function announce(text) {
    if (!liveRegion) {
      liveRegion = el("p", "visually-hidden");
      liveRegion.setAttribute("role", "status");
      document.body.appendChild(liveRegion);
    }
    liveRegion.textContent = text;
  }

  function setUpUploads() {
    // Every panel on the page (a visit group has one each), and each of its inputs: the chooser
    // and, on phones, "Take photo" feed the same queue.
    document.querySelectorAll("form.js-upload").forEach(function (form) {
      var inputs = Array.prototype.slice.call(form.querySelectorAll('input[type="file"]'));
      var input = inputs[0];
      var zone = form.querySelector(".dropzone");
      inputs.forEach(function (each) {
        each.addEventListener("change", function () {
          var chosen = Array.prototype.slice.call(each.files);
          each.value = "";
          uploadFiles(form, chosen);
        });
      });
      form.addEventListener("submit", function (event) {
        event.preventDefault();
        inputs.forEach(function (each) {
          uploadFiles(form, Array.prototype.slice.call(each.files));
          each.value = "";
        });
      });
      ["dragenter", "dragover"].forEach(function (type) {
        zone.addEventListener(type, function (event) {
          event.preventDefault();
          zone.classList.add("is-over");
        });
      });
      ["dragleave", "drop"].forEach(function (type) {
        zone.addEventListener(type, function (event) {
          event.preventDefault();
          zone.classList.remove("is-over");
        });
      });
      zone.addEventListener("drop", function (event) {
        var dropped = event.dataTransfer && event.dataTransfer.files;
        if (!dropped || !dropped.length) return;
        uploadFiles(form, input.multiple ? Array.prototype.slice.call(dropped) : [dropped[0]]);
      });
    });
    // A file dropped beside the drop zone must not replace the page with the file.
    ["dragover", "drop"].forEach(function (type) {
      window.addEventListener(type, function (event) {
        if (!event.target.closest || !event.target.closest(".dropzone")) event.preventDefault();
      });
    });
  }

  /* ---- In-page viewer: images as they are, PDFs as rendered pages (works on every phone) ---- */

  var VIEWER_TEXT_BYTES = 2 * 1024 * 1024;  // text and CSV shown in the page up to this size
  var VIEWER_ROWS = 500;
  var viewerLinks = [], viewerAt = -1, pageWatch = null;

  // RFC 4180 fields: commas, quotes doubled inside quotes, newlines inside quotes.
  function csvRows(text, limit) {
    var rows = [], row = [], field = "", quoted = false, i = 0;
    for (; i < text.length && rows.length < limit; i++) {
      var c = text.charAt(i);
      if (quoted) {
        if (c === '"' && text.charAt(i + 1) === '"') { field += '"'; i++; }
        else if (c === '"') quoted = false;
        else field += c;
      } else if (c === '"') quoted = true;
      else if (c === ",") { row.push(field); field = ""; }
      else if (c === "\n" || c === "\r") {
        if (c === "\r" && text.charAt(i + 1) === "\n") i++;
        row.push(field); rows.push(row); row = []; field = "";
      } else field += c;
    }
    if ((field || row.length) && rows.length < limit) { row.push(field); rows.push(row); }
    return { rows: rows, more: i < text.length };
  }

  function showText(body, link, kind) {
    var size = parseInt(link.dataset.size, 10) || 0;
    if (size > VIEWER_TEXT_BYTES) {
      var note = el("p", "viewer-note", t("This file is too long to show here (%(size)s).", { size: humanSize(size) }) + " ");
      var open = el("a", "", t("Download it"));
      open.href = link.dataset.download;
      note.appendChild(open);
      body.appendChild(note);
      return;
    }
    var waiting = el("p", "viewer-note", t("Loading…"));
    body.appendChild(waiting);
    fetch(link.href, { credentials: "same-origin" })
      .then(function (resp) { if (!resp.ok) throw new Error(resp.status); return resp.text(); })
      .then(function (text) {
        waiting.remove();
        if (kind === "csv") {
          var parsed = csvRows(text.replace(/^\ufeff/, ""), VIEWER_ROWS + 1);
          var table = el("table", "viewer-table");
          var head = el("thead"), rows = el("tbody");
          parsed.rows.forEach(function (cells, n) {
            var tr = el("tr");
            cells.forEach(function (cell) { tr.appendChild(el(n === 0 ? "th" : "td", "", cell)); });
            (n === 0 ? head : rows).appendChild(tr);
          });
          table.appendChild(head);
          table.appendChild(rows);
          var wrap = el("div", "viewer-sheet");
          wrap.tabIndex = 0;  // a wide table scrolls sideways: the keyboard can too
          wrap.setAttribute("role", "region");
          wrap.setAttribute("aria-label", t("The table"));
          wrap.appendChild(table);
          body.appendChild(wrap);
          if (parsed.more) body.appendChild(el("p", "viewer-note", t("Showing the first %(num)s rows; download the file for all of them.", { num: VIEWER_ROWS })));
        } else {
          body.appendChild(el("pre", "viewer-text", text));
        }
      })
      .catch(function () { waiting.textContent = t("The file could not be shown here; download it instead."); });
  }

  // "Page n of N" follows the page at the top of the view as it scrolls.
  function watchPages(body, pages) {
    var indicator = document.getElementById("viewer-page");
    indicator.hidden = false;
    indicator.textContent = t("Page %(page)s of %(pages)s", { page: 1, pages: pages });
    pageWatch = function () {
      var top = body.getBoundingClientRect().top + body.clientHeight / 3, current = 1;
      body.querySelectorAll(".viewer-page").forEach(function (img) {
        if (img.getBoundingClientRect().top <= top) current = parseInt(img.dataset.page, 10);
      });
      indicator.textContent = t("Page %(page)s of %(pages)s", { page: current, pages: pages });
    };
    body.addEventListener("scroll", pageWatch, { passive: true });
  }

  function openViewer(link) {
    var dialog = document.getElementById("viewer");
    if (!dialog || typeof dialog.showModal !== "function") return false;
    var body = document.getElementById("viewer-body");
    var name = link.dataset.name;
    viewerLinks = Array.prototype.slice.call(document.querySelectorAll(".file-name[data-viewer]"));
    viewerAt = viewerLinks.indexOf(link);
    document.getElementById("viewer-prev").disabled = viewerAt <= 0;
    document.getElementById("viewer-next").disabled = viewerAt < 0 || viewerAt >= viewerLinks.length - 1;
    document.getElementById("viewer-title").textContent = name;
    document.getElementById("viewer-open").href = link.href;
    document.getElementById("viewer-download").href = link.dataset.download;
    document.getElementById("viewer-page").hidden = true;
    stopWatchingPages();
    setZoom(false);
    body.textContent = "";
    body.scrollTop = 0;
    var kind = link.dataset.kind;
    if (kind === "pdf") {
      var pages = parseInt(link.dataset.pages, 10) || 1;
      var shown = Math.min(pages, VIEWER_PAGES);
      for (var page = 1; page <= shown; page++) {
        var img = el("img", "viewer-page");
        img.alt = t("Page %(page)s of %(pages)s of %(name)s", { page: page, pages: pages, name: name });
        img.dataset.page = page;
        img.loading = page > 2 ? "lazy" : "eager";
        img.src = link.href + "&size=" + PAGE_BOX + "&preview=" + page;
        body.appendChild(img);
      }
      if (pages > shown) {
        var note = el("p", "viewer-note", t("Showing the first %(shown)s of %(pages)s pages.", { shown: shown, pages: pages }) + " ");
        var more = el("a", "", t("Open the whole PDF"));
        more.href = link.href; more.target = "_blank"; more.rel = "noopener";
        note.appendChild(more);
        body.appendChild(note);
      }
      watchPages(body, pages);
    } else if (kind === "csv" || kind === "text") {
      showText(body, link, kind);
    } else {
      var image = el("img", "viewer-image");
      image.alt = name;
      image.src = link.href;
      body.appendChild(image);
    }
    document.getElementById("viewer-zoom").hidden = !(kind === "pdf" || kind === "image");
    document.getElementById("viewer-sub").textContent = link.dataset.meta || "";
    if (!dialog.open) dialog.showModal();
    return true;
  }

  function stopWatchingPages() {
    if (pageWatch) document.getElementById("viewer-body").removeEventListener("scroll", pageWatch);
    pageWatch = null;
  }

  function setZoom(on) {
    var zoom = document.getElementById("viewer-zoom");
    document.getElementById("viewer-body").classList.toggle("is-zoomed", on);
    zoom.setAttribute("aria-pressed", on ? "true" : "false");
    zoom.textContent = on ? t("Fit") : t("Zoom");
  }

  function step(by) {
    var next = viewerLinks[viewerAt + by];
    if (next) openViewer(next);
  }

  function setUpViewer() {
    var dialog = document.getElementById("viewer");
    if (!dialog) return;
    document.getElementById("viewer-close").addEventListener("click", function () { dialog.close(); });
    document.getElementById("viewer-prev").addEventListener("click", function () { step(-1); });
    document.getElementById("viewer-next").addEventListener("click", function () { step(1); });
    document.getElementById("viewer-zoom").addEventListener("click", function () {
      setZoom(!document.getElementById("viewer-body").classList.contains("is-zoomed"));
    });
    dialog.addEventListener("keydown", function (event) {
      if (event.key === "ArrowRight") { step(1); event.preventDefault(); }
      if (event.key === "ArrowLeft") { step(-1); event.preventDefault(); }
    });
    dialog.addEventListener("click", function (event) {
      if (event.target === dialog) dialog.close();  // a click on the backdrop
    });
    dialog.addEventListener("close", function () {
      document.getElementById("viewer-body").textContent = "";
      stopWatchingPages();
    });
    document.addEventListener("click", function (event) {
      var trigger = event.target.closest && event.target.closest("[data-viewer]");
      if (!trigger || event.ctrlKey || event.metaKey || event.shiftKey || event.button !== 0) return;
      var row = trigger.closest(".file");
      var link = row ? row.querySelector(".file-name[data-viewer]") : trigger;
      if (link && openViewer(link)) event.preventDefault();
    });
  }

  /* ---- Delete asks first ---- */

  function setUpConfirm() {
    var dialog = document.getElementById("confirm");
    if (!dialog || typeof dialog.showModal !== "function") return;
    var from = null, sent = false;
    document.getElementById("confirm-cancel").addEventListener("click", function () { dialog.close(); });
    document.getElementById("confirm-form").addEventListener("submit", function () { sent = true; });
    dialog.addEventListener("close", function () { if (!sent) focusRow(from); });  // Cancel or Escape
    document.addEventListener("click", function (event) {
      var link = event.target.closest && event.target.closest("[data-confirm-delete]");
      if (!link) return;
      event.preventDefault();
      from = link.closest(".file");
      sent = false;
      document.getElementById("confirm-form").action = link.dataset.action;
      document.getElementById("confirm-next").value = window.location.pathname + window.location.search;
      document.getElementById("confirm-title").textContent = t("Delete “%(name)s”?", { name: link.dataset.name });
      document.getElementById("confirm-text").textContent =
        t("It will disappear from this chart. You can undo it, or restore it from Recently deleted.");
      var reasonField = document.getElementById("confirm-reason-field");
      var reason = document.getElementById("confirm-reason");
      var needsReason = link.hasAttribute("data-needs-reason");
      reasonField.hidden = !needsReason;
      reason.required = needsReason;
      reason.value = "";
      dialog.showModal();
      document.getElementById("confirm-cancel").focus();
    });
  }

  /* ---- Small things ---- */

  function setUpDetails() {
    document.addEventListener("toggle", function (event) {
      var details = event.target;
      if (!details.classList || !details.classList.contains("rename") || !details.open) return;
      document.querySelectorAll("details.rename[open]").forEach(function (other) {
        if (other !== details) other.open = false;
      });
      var input = details.querySelector("input[name=name]");
      if (input) {
        input.focus();
        input.select();  // the field holds the stem; the type's ending stays beside it
      }
    }, true);
    document.addEventListener("keydown", function (event) {
      if (event.key !== "Escape" || document.querySelector("dialog[open]")) return;
      var open = document.querySelector("details.rename[open]");
      if (open) closeRename(open);
    });
    document.addEventListener("click", function (event) {
      var cancel = event.target.closest && event.target.closest("[data-rename-cancel]");
      if (cancel) closeRename(cancel.closest("details.rename"));
      var item = event.target.closest && event.target.closest("[data-rename]");
      var rename = item && document.getElementById(item.dataset.rename);
      if (rename) rename.open = true;  // the toggle listener above focuses the field
    });
  }

  // With the script the popover opens from the menu (its summary is hidden): focus goes back there.
  function closeRename(details) {
    details.open = false;
    var summary = details.querySelector("summary");
    if (summary.offsetParent !== null) summary.focus();
    else focusRow(details.closest(".file"));
  }

  // Back to the row acted on: its "⋯" button (what acted), else the row itself.
  function focusRow(row) {
    if (!row || !document.contains(row)) return;
    (row.querySelector(".row-menu-button") || row).focus();
  }

  /* ---- Row menus: "⋯" holds a file's other actions (a <details> without the script) ---- */

  function enhanceMenus(root) {
    root.querySelectorAll("details.row-menu:not([data-menu])").forEach(function (menu) {
      menu.setAttribute("data-menu", "");
      var button = menu.querySelector("summary");
      button.setAttribute("role", "button");
      button.setAttribute("aria-haspopup", "menu");
      button.setAttribute("aria-expanded", menu.open ? "true" : "false");
      var list = menu.querySelector(".row-menu-list");
      list.setAttribute("role", "menu");
      list.querySelectorAll("li").forEach(function (li) { li.setAttribute("role", "none"); });
      list.querySelectorAll(".row-menu-item").forEach(function (item) {
        item.setAttribute("role", "menuitem");
        item.tabIndex = -1;  // the arrows move between items; Tab leaves the menu
      });
    });
  }

  function menuItems(menu) {
    return Array.prototype.filter.call(menu.querySelectorAll(".row-menu-item"),
      function (item) { return item.offsetParent !== null; });
  }

  function openMenu(menu, last) {
    closeMenus(menu);
    menu.open = true;
    menu.querySelector("summary").setAttribute("aria-expanded", "true");
    var items = menuItems(menu);
    if (items.length) items[last ? items.length - 1 : 0].focus();
  }

  function closeMenu(menu, refocus) {
    menu.open = false;
    var button = menu.querySelector("summary");
    button.setAttribute("aria-expanded", "false");
    if (refocus) button.focus();
  }

  function closeMenus(except) {
    document.querySelectorAll("details.row-menu[open]").forEach(function (menu) {
      if (menu !== except) closeMenu(menu, false);
    });
  }

  function setUpMenus() {
    enhanceMenus(document);
    document.addEventListener("click", function (event) {
      var target = event.target.closest ? event.target : null;
      var button = target && target.closest(".row-menu > summary");
      if (button) {  // Enter and Space on the button come here too
        event.preventDefault();
        var menu = button.parentNode;
        if (menu.open) closeMenu(menu, true); else openMenu(menu, false);
        return;
      }
      var item = target && target.closest(".row-menu-item");
      if (item) { closeMenu(item.closest(".row-menu"), false); return; }  // then the item acts
      if (!target || !target.closest(".row-menu[open]")) closeMenus(null);  // a click elsewhere
    });
    document.addEventListener("keydown", function (event) {
      var target = event.target;
      if (!target.closest) return;
      var menu = target.closest(".row-menu");
      if (!menu) return;
      var onButton = target.matches(".row-menu > summary");
      if (onButton && (event.key === "ArrowDown" || event.key === "ArrowUp")) {
        openMenu(menu, event.key === "ArrowUp");
        event.preventDefault();
        return;
      }
      if (!menu.open) return;
      var items = menuItems(menu), at = items.indexOf(target);
      if (event.key === "Escape") {
        closeMenu(menu, true);
        event.preventDefault();
        event.stopPropagation();
      } else if (at >= 0 && (event.key === "ArrowDown" || event.key === "ArrowUp")) {
        items[(at + (event.key === "ArrowDown" ? 1 : items.length - 1)) % items.length].focus();
        event.preventDefault();
      } else if (at >= 0 && (event.key === "Home" || event.key === "End")) {
        items[event.key === "Home" ? 0 : items.length - 1].focus();
        event.preventDefault();
      } else if (at >= 0 && event.key === " " && target.tagName === "A") {
        target.click();  // Space activates a menu item that is a link, as it does a button
        event.preventDefault();
      } else if (event.key === "Tab") {
        closeMenu(menu, true);  // Tab moves on from the menu's button
      }
    });
  }

  /* ---- Details drawer: the file's details page, fetched into a side sheet ---- */

  function setUpDrawer() {
    var dialog = document.getElementById("drawer");
    if (!dialog || typeof dialog.showModal !== "function") return;
    var body = document.getElementById("drawer-body");
    var from = null;
    document.getElementById("drawer-close").addEventListener("click", function () { dialog.close(); });
    dialog.addEventListener("click", function (event) { if (event.target === dialog) dialog.close(); });
    dialog.addEventListener("close", function () { body.textContent = ""; focusRow(from); });
    document.addEventListener("click", function (event) {
      var link = event.target.closest && event.target.closest("[data-details]");
      if (!link || event.ctrlKey || event.metaKey || event.shiftKey || event.button !== 0) return;
      event.preventDefault();
      from = link.closest(".file");
      body.textContent = "";
      body.appendChild(el("p", "muted", t("Loading…")));
      dialog.removeAttribute("aria-labelledby");
      if (!dialog.open) dialog.showModal();
      document.getElementById("drawer-close").focus();
      fetch(link.href, { credentials: "same-origin", headers: { Accept: "text/html", "X-Chartbox-Partial": "details" } })
        .then(function (resp) { if (!resp.ok) throw new Error(resp.status); return resp.text(); })
        .then(function (html) {
          var part = new DOMParser().parseFromString(html, "text/html").getElementById("file-details");
          if (!part) throw new Error("no details");
          body.textContent = "";
          body.appendChild(document.importNode(part, true));
          dialog.setAttribute("aria-labelledby", "details-title");
        })
        .catch(function () {
          body.textContent = "";
          var note = el("p", "", t("The details could not be loaded here.") + " ");
          var page = el("a", "", t("Open them as a page"));
          page.href = link.href;
          note.appendChild(page);
          body.appendChild(note);
        });
    });
  }

  // After an action the page comes back with #file-<id>: focus returns to that row, not the top.
  function focusTheRowActedOn() {
    var id = window.location.hash.slice(1);
    if (id.indexOf("file-") !== 0) return;
    var target = document.getElementById(id);
    if (target) { target.focus(); return; }
    // Not on this page (restored from Recently deleted): the message saying where it went.
    var said = document.querySelector(".flashes .flash-success");
    if (said) { said.tabIndex = -1; said.focus(); }
  }

  // A modal dialog keeps Tab and Shift+Tab inside it, wrapping at either end.
  function trapFocusInDialogs() {
    document.addEventListener("keydown", function (event) {
      if (event.key !== "Tab") return;
      var dialog = document.querySelector("dialog[open]");
      if (!dialog) return;
      var focusable = Array.prototype.filter.call(
        dialog.querySelectorAll("a[href], button:not([disabled]), input:not([disabled]):not([type=hidden]), [tabindex]:not([tabindex='-1'])"),
        function (el) { return el.offsetParent !== null || el === document.activeElement; });
      if (!focusable.length) return;
      var first = focusable[0], last = focusable[focusable.length - 1];
      var inside = dialog.contains(document.activeElement);
      if (event.shiftKey && (document.activeElement === first || !inside)) { last.focus(); event.preventDefault(); }
      else if (!event.shiftKey && (document.activeElement === last || !inside)) { first.focus(); event.preventDefault(); }
    });
  }

  // A thumbnail that cannot be made (an odd PDF) falls back to the type badge beneath it.
  document.addEventListener("error", function (event) {
    if (event.target.classList && event.target.classList.contains("thumb")) event.target.classList.add("is-broken");
  }, true);

  document.addEventListener("DOMContentLoaded", function () {
    setUpUploads();
    setUpViewer();
    setUpConfirm();
    setUpDetails();
    setUpMenus();
    setUpDrawer();
    trapFocusInDialogs();
    focusTheRowActedOn();
  });
})();
