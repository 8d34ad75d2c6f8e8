/* privguard.core._quickscan: the quick pass's loop over a response's header list, in C.
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

static PyMethodDef methods[] = {
    {"scan", (PyCFunction)(void (*)(void))scan, METH_FASTCALL,
     "scan(headers, kinds, actions, media, status) -> (out, kept, dropped) or None"},
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
    .m_doc = "The quick pass's header loop in C (see privguard.core.response._scan_headers).",
    .m_size = 0,
    .m_methods = methods,
    .m_slots = slots,
};

PyMODINIT_FUNC
PyInit__quickscan(void)
{
    return PyModuleDef_Init(&quickscan_module);
}
