/* privguard banner: consent dialog, gated scripts and iframes, Consent Mode updates.
 *
 * Nothing here counts as consent except a click (or Enter/Space) on a choice button:
 * not scrolling, not a timeout, not Escape, not closing. The signed consent cookie is
 * never parsed here; the state comes from GET {prefix}/consent and from the answer to
 * POST {prefix}/consent. No third-party requests, no inline event handlers.
 */
(function () {
  "use strict";

  var root = document.getElementById("privguard-banner");
  var configEl = document.getElementById("privguard-config");
  if (!root || !configEl || root.getAttribute("data-privguard-ready") === "1") {
    return;
  }
  root.setAttribute("data-privguard-ready", "1");

  var config = {};
  try {
    config = JSON.parse(configEl.textContent || "{}");
  } catch (e) {
    config = {};
  }
  var prefix = config.prefix || "/privguard";
  var consentUrl = prefix + "/consent";
  var form = root.querySelector('form[data-privguard-form="consent"]');
  var panel = root.querySelector(".privguard__panel") || root;
  var details = root.querySelector(".privguard__details");
  var reopen = document.getElementById("privguard-reopen");
  var required = !root.hasAttribute("hidden");
  var state = null;
  var busy = false;
  var lastFocus = null; /* where focus was before the dialog opened */
  var lastOutside = null; /* the last page element the visitor focused, outside it */
  var activated = {};

  var CONSENT_MODE = {
    functionality: ["functionality_storage", "personalization_storage"],
    performance: ["analytics_storage"],
    marketing: ["ad_storage", "ad_user_data", "ad_personalization"]
  };

  function csrfToken() {
    var input = form && form.querySelector('input[name="csrf_token"]');
    return input ? input.value : "";
  }

  function setNext() {
    var here = window.location.pathname + window.location.search;
    var forms = root.querySelectorAll("form");
    for (var i = 0; i < forms.length; i++) {
      var input = forms[i].querySelector('input[name="next"]');
      if (!input) {
        input = document.createElement("input");
        input.type = "hidden";
        input.name = "next";
        forms[i].appendChild(input);
      }
      input.value = here;
    }
  }

  function allowedCategories(s) {
    var out = [];
    var cats = (s && s.categories) || {};
    for (var name in cats) {
      if (Object.prototype.hasOwnProperty.call(cats, name) && cats[name] === true) {
        out.push(name);
      }
    }
    return out;
  }

  function isAllowed(s, category) {
    return !!(s && s.categories && s.categories[category] === true);
  }

  /* --- gated content -------------------------------------------------------------- */

  function activateScript(old, done) {
    var script = document.createElement("script");
    for (var i = 0; i < old.attributes.length; i++) {
      var attr = old.attributes[i];
      if (attr.name === "type" || attr.name === "data-privguard-category") {
        continue;
      }
      script.setAttribute(attr.name, attr.value);
    }
    var realType = old.getAttribute("data-privguard-type");
    if (realType) {
      script.type = realType;
    }
    var nonce = old.nonce || old.getAttribute("nonce");
    if (nonce) {
      script.nonce = nonce;
    }
    script.setAttribute("data-privguard-activated", old.getAttribute("data-privguard-category"));
    var external = !!old.getAttribute("src");
    if (external) {
      script.async = false; /* keep document order among activated external scripts */
      script.onload = script.onerror = done;
    } else {
      script.text = old.text;
    }
    old.parentNode.replaceChild(script, old);
    return external && script.getAttribute("type") !== "text/plain";
  }

  function activateFrame(el, category) {
    var before = el.previousElementSibling;
    if (before && before.hasAttribute("data-privguard-placeholder")) {
      before.parentNode.removeChild(before);
    }
    if (el.getAttribute("data-privguard-held") === "1") {
      el.removeAttribute("hidden");
      el.removeAttribute("data-privguard-held");
    }
    el.setAttribute("src", el.getAttribute("data-src"));
    el.setAttribute("data-privguard-activated", category);
  }

  /* Held elements run in document order: an external script first loads (or fails)
   * before the next held element runs, as the parser would have done. */
  function activate(s) {
    var nodes = document.querySelectorAll("[data-privguard-category]");
    var queue = [];
    for (var i = 0; i < nodes.length; i++) {
      queue.push(nodes[i]);
    }
    function next() {
      while (queue.length) {
        var el = queue.shift();
        var category = el.getAttribute("data-privguard-category");
        if (!isAllowed(s, category) || !el.parentNode) {
          continue;
        }
        var tag = el.tagName.toLowerCase();
        if (tag === "script" && (el.getAttribute("type") || "").toLowerCase() === "text/plain") {
          activated[category] = true;
          if (activateScript(el, next)) {
            return; /* wait for it */
          }
        } else if (tag === "iframe" && el.getAttribute("data-src") && !el.getAttribute("src")) {
          activated[category] = true;
          activateFrame(el, category);
        }
      }
    }
    next();
  }

  function consentModeUpdate(s) {
    if (!config.consentMode || typeof window.gtag !== "function") {
      return;
    }
    var update = {};
    for (var category in CONSENT_MODE) {
      var value = isAllowed(s, category) ? "granted" : "denied";
      for (var i = 0; i < CONSENT_MODE[category].length; i++) {
        update[CONSENT_MODE[category][i]] = value;
      }
    }
    window.gtag("consent", "update", update);
  }

  function announce(s, initial) {
    var detail = { state: s, categories: allowedCategories(s), initial: !!initial };
    var event;
    if (typeof window.CustomEvent === "function") {
      event = new CustomEvent("privguard:consent", { bubbles: true, detail: detail });
    } else {
      event = document.createEvent("CustomEvent");
      event.initCustomEvent("privguard:consent", true, false, detail);
    }
    document.dispatchEvent(event);
  }

  function apply(s, initial) {
    var before = state;
    state = s;
    var withdrawn = false;
    if (before) {
      for (var category in activated) {
        if (activated[category] && !isAllowed(s, category)) {
          withdrawn = true;
        }
      }
    }
    if (window.privguardGuard) {
      window.privguardGuard.update(allowedCategories(s));
    }
    activate(s);
    syncCheckboxes(s);
    if (!initial) {
      consentModeUpdate(s);
    }
    announce(s, initial);
    if (withdrawn) {
      /* scripts of a withdrawn category are already running: only a reload stops them */
      window.location.reload();
    }
  }

  /* --- talking to the server ------------------------------------------------------ */

  function request(method, body) {
    var init = {
      method: method,
      credentials: "same-origin",
      headers: { Accept: "application/json" }
    };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.headers["X-Privguard-CSRF"] = csrfToken();
      init.body = JSON.stringify(body);
    }
    return window.fetch(consentUrl, init).then(function (response) {
      if (!response.ok) {
        throw new Error("privguard: " + method + " " + consentUrl + " answered " + response.status);
      }
      return response.json();
    });
  }

  function loadState() {
    return request("GET").then(function (s) {
      apply(s, true);
      return s;
    });
  }

  function submitNatively(button) {
    /* fetch failed: fall back to the no-JS form post (the server redirects back) */
    var target = button && button.form ? button.form : form;
    if (!target) {
      return;
    }
    target.setAttribute("data-privguard-native", "1");
    if (typeof target.requestSubmit === "function") {
      target.requestSubmit(button || undefined);
    } else {
      target.submit();
    }
  }

  function choose(body, button) {
    if (busy) {
      return;
    }
    busy = true;
    request("POST", body).then(
      function (s) {
        busy = false;
        close();
        apply(s, false);
      },
      function () {
        /* only a failed request falls back, never an error while applying the answer */
        busy = false;
        submitNatively(button);
      }
    );
  }

  function selectedCategories() {
    var out = [];
    var boxes = root.querySelectorAll('input[type="checkbox"][name="category"]');
    for (var i = 0; i < boxes.length; i++) {
      if (boxes[i].checked) {
        out.push(boxes[i].value);
      }
    }
    return out;
  }

  function syncCheckboxes(s) {
    /* a box is ticked exactly when its category is allowed now: unticked before an
     * opt-in choice, ticked for what an opt-out regime has on until refused */
    if (!s || !s.categories) {
      return;
    }
    var boxes = root.querySelectorAll('input[type="checkbox"][name="category"]');
    for (var i = 0; i < boxes.length; i++) {
      boxes[i].checked = isAllowed(s, boxes[i].value);
    }
  }

  /* --- dialog --------------------------------------------------------------------- */

  function open(fromUser) {
    if (!root.hasAttribute("hidden") && !fromUser) {
      return;
    }
    if (root.hasAttribute("hidden")) {
      lastFocus = document.activeElement;
    }
    root.removeAttribute("hidden");
    if (fromUser) {
      root.setAttribute("data-privguard-reopened", "1"); /* shows the close button */
    }
    if (reopen) {
      reopen.setAttribute("hidden", "");
    }
    if (fromUser) {
      required = false;
      loadState().catch(function () {});
    }
    panel.focus();
  }

  function focusable(el) {
    return !!(
      el &&
      el !== document.body &&
      el !== document.documentElement &&
      typeof el.focus === "function" &&
      document.contains(el) &&
      !root.contains(el) &&
      el.getClientRects().length > 0
    );
  }

  function close() {
    var hadFocus = root.contains(document.activeElement);
    root.setAttribute("hidden", "");
    root.removeAttribute("data-privguard-reopened");
    required = false;
    if (reopen) {
      reopen.removeAttribute("hidden");
    }
    if (details) {
      details.open = false;
    }
    /* focus goes back where it was before the dialog: the control that opened it, or
     * the page element focused last; with none (a first visit), to the page itself */
    var back = focusable(lastFocus) ? lastFocus : focusable(lastOutside) ? lastOutside : null;
    if (back) {
      back.focus();
    } else if (hadFocus && document.activeElement && document.activeElement !== document.body) {
      document.activeElement.blur();
    }
    lastFocus = null;
  }

  function onKeydown(event) {
    if (root.hasAttribute("hidden")) {
      return;
    }
    if (event.key === "Escape" || event.key === "Esc") {
      /* Escape is never consent: collapse the settings, or close a dialog the visitor
       * reopened; a first-time dialog stays open until a choice is clicked. */
      event.preventDefault();
      if (details && details.open) {
        details.open = false;
        var summary = details.querySelector("summary");
        if (summary) {
          summary.focus();
        }
      } else if (!required) {
        close();
      }
      return;
    }
    /* not modal (aria-modal="false"): Tab moves on to the page, nothing is trapped */
  }

  function onClick(event) {
    var target = event.target;
    var button = target && target.closest ? target.closest("[data-privguard-action]") : null;
    if (!button || !root.contains(button)) {
      return;
    }
    var action = button.getAttribute("data-privguard-action");
    if (action === "accept-all") {
      event.preventDefault();
      choose({ accept: "all" }, button);
    } else if (action === "reject-all") {
      event.preventDefault();
      choose({ accept: "none" }, button);
    } else if (action === "save") {
      event.preventDefault();
      choose({ categories: selectedCategories() }, button);
    } else if (action === "close") {
      event.preventDefault();
      if (!required) {
        close(); /* closing is never a choice */
      }
    }
    /* "settings" is a <summary>: the browser opens the <details> itself */
  }

  function onSubmit(event) {
    if (event.target.getAttribute("data-privguard-native") === "1") {
      return; /* the fallback post after a failed fetch */
    }
    /* every choice goes through onClick; a submit without one is not a choice */
    event.preventDefault();
  }

  /* --- start ---------------------------------------------------------------------- */

  /* a held iframe's placeholder: allow its category on top of what is allowed now */
  function onAllow(event) {
    var target = event.target;
    var button = target && target.closest ? target.closest('[data-privguard-action="allow-category"]') : null;
    if (!button) {
      return;
    }
    event.preventDefault();
    var wanted = button.getAttribute("data-privguard-allow");
    var current = state ? allowedCategories(state) : [];
    var body = current.concat([wanted]).filter(function (c, i, all) {
      return c !== "necessary" && all.indexOf(c) === i;
    });
    choose({ categories: body }, null);
  }

  setNext();
  document.addEventListener("click", onAllow);
  root.addEventListener("click", onClick);
  root.addEventListener("submit", onSubmit);
  document.addEventListener("keydown", onKeydown);
  document.addEventListener("focusin", function (event) {
    if (!root.contains(event.target) && event.target !== reopen) {
      lastOutside = event.target;
    }
  });
  if (reopen) {
    reopen.addEventListener("click", function (event) {
      event.preventDefault();
      open(true);
    });
    if (required) {
      reopen.setAttribute("hidden", "");
    }
  }

  window.privguard = {
    open: function () {
      open(true);
    },
    close: function () {
      if (!required) {
        close();
      }
    },
    state: function () {
      return state;
    },
    refresh: loadState
  };

  if (document.querySelector("[data-privguard-category]")) {
    loadState().catch(function () {});
  }
  if (required) {
    lastFocus = document.activeElement;
    panel.focus();
  }
})();
