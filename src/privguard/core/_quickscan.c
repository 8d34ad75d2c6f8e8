/* privguard.core._quickscan: the two loops privguard runs on most responses, in C: the
 * quick pass's loop over a response's header list (scan), and the page memo's check
 * that a chunk fits a template it learnt (fits, at the end of this file).
 *
 * An optional accelerator. privguard.core.response holds the same loop in Python
 * (_scan_headers), which is the reference: both answer every header list alike
 * (tests/core/test_quickscan.py compares them on generated lists), and without a
 * compiler privguard runs the Python one.
 *
 * scan(headers, kinds, actions, media, status) -> (out, kept, dropped) | None
 *
 *   headers  the app's (name, value) pairs, all str (WSGI) or all bytes (ASGI)
 *   kinds    header name -> what the filter does with it (KIND_* below; 0: passed on)
 *   actions  Set-Cookie name -> ACTION_* (the decision's plan)
 *   media    Content-Type value -> (its text, is it a document)
 *   status   the response's status code
 *
 * None: the list needs the whole filter (a name the filter looks at spelt another
 * way, a cookie name not judged yet, a header the filter changes, a type not seen
 * yet, a document, a pair that is not a 2-tuple or 2-list of str or bytes).
 * Otherwise the pairs passed on (the app's own tuples, in order), whether a cookie
 * was kept as this visitor's consent allows, and whether one was dropped as it denies.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

#define KIND_COOKIE 1
#define KIND_CTYPE 7
#define ACTION_PASS 0
#define ACTION_KEEP 1
#define ACTION_DROP 2
#define ACTION_DROP_ALWAYS 3

/* The part of a Set-Cookie value before its first "=", or NULL with no error set
 * when the value has none (or is neither str nor bytes): then the list declines. */
static PyObject *
cookie_name(PyObject *value)
{
    if (PyUnicode_CheckExact(value)) {
        Py_ssize_t at = PyUnicode_FindChar(value, '=', 0, PyUnicode_GET_LENGTH(value), 1);
        if (at < 0) {
            return NULL; /* -1: no "=", -2: an error (left set) */
        }
        return PyUnicode_Substring(value, 0, at);
    }
    if (PyBytes_CheckExact(value)) {
        const char *data = PyBytes_AS_STRING(value);
        const char *eq = memchr(data, '=', (size_t)PyBytes_GET_SIZE(value));
        if (eq == NULL) {
            return NULL;
        }
        return PyBytes_FromStringAndSize(data, eq - data);
    }
    return NULL;
}

/* Is a name the filter does not know spelt in a case it would look up? (the Python
 * loop: ``not name.islower() and kinds.get(name.lower())``). 1 yes, 0 no, -1 error. */
static int
known_in_other_case(PyObject *kinds, PyObject *name)
{
    PyObject *lower_test = PyObject_CallMethod(name, "islower", NULL);
    if (lower_test == NULL) {
        return -1;
    }
    int is_lower = PyObject_IsTrue(lower_test);
    Py_DECREF(lower_test);
    if (is_lower != 0) {
        return is_lower < 0 ? -1 : 0;
    }
    PyObject *lowered = PyObject_CallMethod(name, "lower", NULL);
    if (lowered == NULL) {
        return -1;
    }
    PyObject *kind = PyDict_GetItemWithError(kinds, lowered);
    Py_DECREF(lowered);
    if (kind == NULL) {
        return PyErr_Occurred() ? -1 : 0;
    }
    return PyObject_IsTrue(kind);
}

static long
small_int(PyObject *value)
{
    return PyLong_CheckExact(value) ? PyLong_AsLong(value) : -1;
}

static PyObject *
scan(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 5) {
        PyErr_SetString(PyExc_TypeError, "scan() takes exactly 5 arguments");
        return NULL;
    }
    PyObject *kinds = args[1], *actions = args[2], *media = args[3];
    if (!PyDict_CheckExact(kinds) || !PyDict_CheckExact(actions) || !PyDict_CheckExact(media)) {
        PyErr_SetString(PyExc_TypeError, "scan(): kinds, actions and media must be dicts");
        return NULL;
    }
    long status = PyLong_AsLong(args[4]);
    if (status == -1 && PyErr_Occurred()) {
        return NULL;
    }
    PyObject *seq = PySequence_Fast(args[0], "scan(): headers must be a sequence");
    if (seq == NULL) {
        return NULL;
    }
    Py_ssize_t count = PySequence_Fast_GET_SIZE(seq);
    PyObject **pairs = PySequence_Fast_ITEMS(seq);
    PyObject *out = PyList_New(0);
    if (out == NULL) {
        Py_DECREF(seq);
        return NULL;
    }
    int kept = 0, dropped = 0, typed = 0;
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *pair = pairs[i], *name, *value;
        if (PyTuple_CheckExact(pair) && PyTuple_GET_SIZE(pair) == 2) {
            name = PyTuple_GET_ITEM(pair, 0);
            value = PyTuple_GET_ITEM(pair, 1);
        }
        else if (PyList_CheckExact(pair) && PyList_GET_SIZE(pair) == 2) {
            name = PyList_GET_ITEM(pair, 0);
            value = PyList_GET_ITEM(pair, 1);
        }
        else {
            goto decline;
        }
        if (!(PyUnicode_CheckExact(name) || PyBytes_CheckExact(name))) {
            goto decline;
        }
        PyObject *kind_obj = PyDict_GetItemWithError(kinds, name);
        if (kind_obj == NULL) {
            if (PyErr_Occurred()) {
                goto error;
            }
            int other = known_in_other_case(kinds, name);
            if (other < 0) {
                goto error;
            }
            if (other) {
                goto decline;
            }
        }
        else {
            long kind = small_int(kind_obj);
            if (kind == KIND_COOKIE) {
                PyObject *cname = cookie_name(value);
                if (cname == NULL) {
                    if (PyErr_Occurred()) {
                        goto error;
                    }
                    goto decline; /* no "=": the filter judges it */
                }
                PyObject *action_obj = PyDict_GetItemWithError(actions, cname);
                Py_DECREF(cname);
                if (action_obj == NULL) {
                    if (PyErr_Occurred()) {
                        goto error;
                    }
                    goto decline; /* not judged yet, or undeclared (reported) */
                }
                long action = small_int(action_obj);
                if (action == ACTION_KEEP) {
                    kept = 1;
                }
                else if (action == ACTION_DROP) {
                    dropped = 1;
                    continue;
                }
                else if (action == ACTION_DROP_ALWAYS) {
                    continue;
                }
                else if (action != ACTION_PASS) {
                    goto decline;
                }
            }
            else if (kind == KIND_CTYPE && !typed) {
                PyObject *found = PyDict_GetItemWithError(media, value);
                if (found == NULL) {
                    if (PyErr_Occurred()) {
                        goto error;
                    }
                    goto decline; /* a type not seen yet */
                }
                if (!PyTuple_CheckExact(found) || PyTuple_GET_SIZE(found) != 2) {
                    goto decline;
                }
                int document = PyObject_IsTrue(PyTuple_GET_ITEM(found, 1));
                if (document < 0) {
                    goto error;
                }
                if (document && !(300 <= status && status < 400)) {
                    goto decline; /* a document */
                }
                typed = 1;
            }
            else if (kind != 0) {
                goto decline; /* a header the filter changes, or a second Content-Type */
            }
        }
        if (PyList_Append(out, pair) < 0) {
            goto error;
        }
    }
    Py_DECREF(seq);
    PyObject *answer = PyTuple_Pack(3, out, kept ? Py_True : Py_False, dropped ? Py_True : Py_False);
    Py_DECREF(out);
    return answer;
decline:
    Py_DECREF(seq);
    Py_DECREF(out);
    Py_RETURN_NONE;
error:
    Py_DECREF(seq);
    Py_DECREF(out);
    return NULL;
}

/* fits(form, new) -> bool: privguard.banner.seen.fits in C (that function is the
 * reference; tests/core/test_quickscan.py holds the two to the same answers).
 *
 *   form  a template learnt by privguard.banner.seen.Seen: (stretches, starts, runs,
 *         spans, inside, getter): the template's bytes between its runs and where
 *         each starts, the runs and those inside a span (slices); the rest unused
 *   new   the chunk (bytes)
 *
 * True when new equals each stretch at its start, has no "<" in a run and none of
 * <>"' in a run inside a span (runs cut at the end of new, as a slice is).
 */
static int
run_holds(PyObject *run, const char *data, Py_ssize_t n, const char *bytes)
{
    Py_ssize_t start, stop, step;
    if (!PySlice_Check(run) || PySlice_Unpack(run, &start, &stop, &step) < 0) {
        return -1;
    }
    if (step != 1) {
        PyErr_SetString(PyExc_ValueError, "fits(): a run with a step");
        return -1;
    }
    PySlice_AdjustIndices(n, &start, &stop, step);
    for (const char *b = bytes; *b; b++) {
        if (stop > start && memchr(data + start, *b, (size_t)(stop - start)) != NULL) {
            return 1;
        }
    }
    return 0;
}

/* Does any run of the tuple ``runs`` hold one of ``bytes``? 1 yes, 0 no, -1 error. */
static int
runs_hold(PyObject *runs, const char *data, Py_ssize_t n, const char *bytes)
{
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(runs); i++) {
        int found = run_holds(PyTuple_GET_ITEM(runs, i), data, n, bytes);
        if (found != 0) {
            return found;
        }
    }
    return 0;
}

static PyObject *
fits(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "fits() takes exactly 2 arguments");
        return NULL;
    }
    PyObject *form = args[0], *new = args[1];
    if (!PyTuple_CheckExact(form) || PyTuple_GET_SIZE(form) < 5 || !PyBytes_CheckExact(new)) {
        PyErr_SetString(PyExc_TypeError, "fits(): a form tuple and bytes");
        return NULL;
    }
    PyObject *stretches = PyTuple_GET_ITEM(form, 0), *starts = PyTuple_GET_ITEM(form, 1);
    PyObject *runs = PyTuple_GET_ITEM(form, 2), *inside = PyTuple_GET_ITEM(form, 4);
    if (!PyTuple_CheckExact(stretches) || !PyTuple_CheckExact(starts) ||
        !PyTuple_CheckExact(runs) || !PyTuple_CheckExact(inside) ||
        PyTuple_GET_SIZE(stretches) != PyTuple_GET_SIZE(starts)) {
        PyErr_SetString(PyExc_TypeError, "fits(): not a form");
        return NULL;
    }
    const char *data = PyBytes_AS_STRING(new);
    Py_ssize_t n = PyBytes_GET_SIZE(new);
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(stretches); i++) {
        PyObject *stretch = PyTuple_GET_ITEM(stretches, i);
        if (!PyBytes_CheckExact(stretch)) {
            PyErr_SetString(PyExc_TypeError, "fits(): a stretch that is not bytes");
            return NULL;
        }
        Py_ssize_t at = PyLong_AsSsize_t(PyTuple_GET_ITEM(starts, i));
        if (at == -1 && PyErr_Occurred()) {
            return NULL;
        }
        Py_ssize_t size = PyBytes_GET_SIZE(stretch);
        if (at < 0) { /* as bytes.startswith counts a negative start: from the end */
            at += n;
            if (at < 0) {
                at = 0;
            }
        }
        if (at > n || size > n - at || memcmp(data + at, PyBytes_AS_STRING(stretch), (size_t)size)) {
            Py_RETURN_FALSE;
        }
    }
    int found = runs_hold(runs, data, n, "<");
    if (found == 0) {
        found = runs_hold(inside, data, n, "<>\"'");
    }
    if (found != 0) {
        if (found < 0) {
            return NULL;
        }
        Py_RETURN_FALSE;
    }
    Py_RETURN_TRUE;
}

static PyMethodDef methods[] = {
    {"scan", (PyCFunction)(void (*)(void))scan, METH_FASTCALL,
     "scan(headers, kinds, actions, media, status) -> (out, kept, dropped) or None"},
    {"fits", (PyCFunction)(void (*)(void))fits, METH_FASTCALL,
     "fits(form, new) -> bool: privguard.banner.seen.fits"},
    {NULL, NULL, 0, NULL},
};

static int
exec_module(PyObject *module)
{
    if (PyModule_AddIntConstant(module, "KIND_COOKIE", KIND_COOKIE) < 0 ||
        PyModule_AddIntConstant(module, "KIND_CTYPE", KIND_CTYPE) < 0 ||
        PyModule_AddIntConstant(module, "ACTION_PASS", ACTION_PASS) < 0 ||
        PyModule_AddIntConstant(module, "ACTION_KEEP", ACTION_KEEP) < 0 ||
        PyModule_AddIntConstant(module, "ACTION_DROP", ACTION_DROP) < 0 ||
        PyModule_AddIntConstant(module, "ACTION_DROP_ALWAYS", ACTION_DROP_ALWAYS) < 0) {
        return -1;
    }
    return 0;
}

static PyModuleDef_Slot slots[] = {
    {Py_mod_exec, exec_module},
    {0, NULL},
};

static struct PyModuleDef quickscan_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "privguard.core._quickscan",
    .m_doc = "The quick pass's header loop and the page memo's template check, in C "
              "(privguard.core.response._scan_headers, privguard.banner.seen.fits).",
    .m_size = 0,
    .m_methods = methods,
    .m_slots = slots,
};

PyMODINIT_FUNC
PyInit__quickscan(void)
{
    return PyModuleDef_Init(&quickscan_module);
}
