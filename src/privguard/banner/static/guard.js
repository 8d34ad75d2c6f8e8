/* privguard guard: the first script in <head>. Refuses cookie writes of categories
 * that are not allowed and holds back scripts and iframes inserted at run time whose
 * URL is in the tracker catalog, with the same data as the server. The banner calls
 * privguardGuard.update(categories) after a choice; held elements then run from there.
 * Shipped whitespace-stripped inline; C is the server's configuration. */
(function (C) {
  "use strict";
  var W = window, D = document, A = {}, S = Element.prototype.setAttribute;
  var own = function (o, k) { return Object.prototype.hasOwnProperty.call(o, k); };
  var K = { n: "necessary", f: "functionality", p: "performance", m: "marketing" };
  var rx = function (l) { return l.map(function (p) { return [new RegExp(p[0]), p[1]]; }); };
  var CG = rx(C.cg), TG = rx(C.tg), TU = rx(C.tu);
  function allow(list) {
    A = { necessary: 1 };
    for (var i = 0; i < list.length; i++) { A[list[i]] = 1; }
  }
  allow(C.a);
  function first(list, text) {
    for (var i = 0; i < list.length; i++) { if (list[i][0].test(text)) { return list[i][1]; } }
    return null;
  }
  /* the category of a catalogued URL that is not allowed now, else null */
  function tracker(url) {
    var u;
    try { u = new URL(String(url), D.baseURI); } catch (e) { return null; }
    if (!/^(https?|wss?):$/.test(u.protocol)) { return null; }
    var h = u.hostname.toLowerCase().replace(/\.$/, ""), n = h, i;
    var t = first(TU, h + u.pathname + u.search) || (own(C.te, h) ? C.te[h] : null);
    while (!t) {
      if (own(C.ts, n)) { t = C.ts[n]; break; }
      i = n.indexOf(".");
      if (i < 0) { break; }
      n = n.slice(i + 1);
    }
    t = t || first(TG, h);
    var c = t && K[t.toLowerCase()];
    return !c || A[c] || (C.g && t !== t.toLowerCase()) ? null : c;
  }
  function category(name) {
    var c = own(C.ce, name) ? C.ce[name] : first(CG, name);
    return c ? K[c] : null;
  }
  function permitted(name) {
    var c = category(name);
    return c === null ? C.cu === "allow" : !!A[c];
  }
  /* a write that deletes a cookie always passes */
  function deletes(text) {
    var m = /;\s*expires=([^;]*)/i.exec(text);
    return /;\s*max-age=\s*(0|-)/i.test(text) || !!(m && Date.parse(m[1]) <= Date.now());
  }
  var jar = Object.getOwnPropertyDescriptor(Document.prototype, "cookie");
  if (jar && jar.set) {
    Object.defineProperty(D, "cookie", {
      configurable: true,
      get: function () { return jar.get.call(D); },
      set: function (v) {
        var text = String(v);
        if (permitted(text.split("=")[0].trim()) || deletes(text)) { jar.set.call(D, v); }
      }
    });
  }
  var store = W.cookieStore;
  if (store && store.set) {
    var set = store.set;
    store.set = function (a) {
      var o = typeof a === "object" && a ? a : { name: a };
      if (permitted(String(o.name)) || (o.expires != null && o.expires <= Date.now())) {
        return set.apply(store, arguments);
      }
      return Promise.resolve();
    };
  }
  /* hold a script or iframe about to load a catalogued URL (same marks as the server) */
  function hold(el, url) {
    var tag = el && el.nodeType === 1 ? el.tagName : "";
    if ((tag !== "SCRIPT" && tag !== "IFRAME") || el.hasAttribute("data-privguard-category")) {
      return false;
    }
    var c = tracker(url === undefined ? el.getAttribute("src") || "" : url);
    if (!c || (url === undefined && !el.getAttribute("src"))) { return false; }
    S.call(el, "data-privguard-category", c);
    if (tag === "SCRIPT") {
      if (el.getAttribute("type")) { S.call(el, "data-privguard-type", el.getAttribute("type")); }
      S.call(el, "type", "text/plain");
      if (url !== undefined) { S.call(el, "src", url); }
    } else {
      S.call(el, "data-src", url === undefined ? el.getAttribute("src") : url);
      el.removeAttribute("src");
    }
    return true;
  }
  function holdAll(node) {
    if (node && node.nodeType === 11) {
      for (var c = node.firstChild; c; c = c.nextSibling) { hold(c); }
    } else {
      hold(node);
    }
  }
  function wrap(proto, names, all) {
    names.forEach(function (m) {
      var orig = proto[m];
      if (typeof orig !== "function") { return; }
      proto[m] = function () {
        for (var i = 0; i < (all ? arguments.length : 1); i++) { holdAll(arguments[i]); }
        return orig.apply(this, arguments);
      };
    });
  }
  wrap(Node.prototype, ["appendChild", "insertBefore", "replaceChild"], false);
  wrap(Element.prototype, ["append", "prepend", "before", "after", "replaceWith"], true);
  [W.HTMLScriptElement, W.HTMLIFrameElement].forEach(function (K) {
    var d = K && Object.getOwnPropertyDescriptor(K.prototype, "src");
    if (!d || !d.set) { return; }
    Object.defineProperty(K.prototype, "src", {
      configurable: true,
      enumerable: d.enumerable,
      get: d.get,
      set: function (v) { if (!hold(this, String(v))) { d.set.call(this, v); } }
    });
  });
  Element.prototype.setAttribute = function (n, v) {
    if (String(n).toLowerCase() === "src" && hold(this, String(v))) { return; }
    return S.apply(this, arguments);
  };
  /* frames written with innerHTML never pass the methods above */
  if (W.MutationObserver) {
    new MutationObserver(function (records) {
      records.forEach(function (r) {
        r.addedNodes.forEach(function (n) {
          if (n.tagName === "IFRAME") { hold(n); }
        });
      });
    }).observe(D.documentElement, { childList: true, subtree: true });
  }
  /* calls made before consent must not throw */
  if (!W.gtag) {
    W.dataLayer = W.dataLayer || [];
    W.gtag = function () { W.dataLayer.push(arguments); };
  }
  function stub() {
    var f = function () {};
    f.privguard = f.push = f;
    f.queue = [];
    f.loaded = true;
    f.version = "2.0";
    return f;
  }
  if (!W.fbq && !A.marketing) { W.fbq = W._fbq = stub(); }
  /* expire what a now-denied category set, on this host and its parent domains */
  function expire() {
    D.cookie.split(";").forEach(function (part) {
      var name = part.split("=")[0].trim(), host = location.hostname.split(".");
      var c = category(name);
      if (!name || c === null || A[c]) { return; } /* undeclared: never expired */
      jar.set.call(D, name + "=; max-age=0; path=/");
      while (host.length > 1) {
        jar.set.call(D, name + "=; max-age=0; path=/; domain=" + host.join("."));
        host.shift();
      }
    });
  }
  W.privguardGuard = {
    update: function (list) {
      allow(list);
      if (A.marketing && W.fbq && W.fbq.privguard) { delete W.fbq; delete W._fbq; }
      if (jar) { expire(); }
    },
    tracker: tracker
  };
})(__PRIVGUARD_GUARD__);
