/* objcprefork._objcprefork: run Objective-C +initialize for listed classes
   before fork(), so a child of a threaded parent finds them initialized.

   The Python module, and the only part that touches Python (core.h lists the
   others). Classes are found and forced outside any fork, with the GIL
   released: at configuration time, and from os.fork's before-hook (force).
   The fork handlers only read flags (fork.c); docs/design.md says why.

   One process-wide state serves every interpreter: the table, the switch and
   each class's source are the process's, and every interpreter reports them
   the same way (a fork forks the whole process). */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "core.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static PyObject *runtime_str(const char *text);

enum { STATE_PENDING, STATE_INITIALIZED, STATE_NOT_LOADED, STATE_BLOCKED };
static const char *const state_names[] = {"pending", "initialized", "not loaded", "blocked"};

/* config_lock is only ever taken with the GIL released, and never held across
   Python or a +initialize: across building a table (malloc, hashing), and
   across binding the runtime (dlopen, dlsym, sel_registerName, and
   objc_addLoadImageFunc, which takes objc's runtime lock and calls back a
   function that only counts). No thread can block on Python while holding it. */
#define WITHOUT_GIL_LOCKED(statement)                                                        \
    do {                                                                                     \
        Py_BEGIN_ALLOW_THREADS pthread_mutex_lock(&config_lock);                             \
        statement;                                                                           \
        pthread_mutex_unlock(&config_lock);                                                  \
        Py_END_ALLOW_THREADS                                                                 \
    } while (0)

static int
bound_now(void)
{
    int bound;
    Py_BEGIN_ALLOW_THREADS bound = ensure_runtime();
    Py_END_ALLOW_THREADS return bound;
}

/* set_table(classes, append=False): classes, a dict (not a subclass: its
   storage is read as it is, and exact str keys are unique by their bytes,
   as the table wants), maps each name to its source, in order. A reference
   to every str keeps its UTF-8 buffer alive while the GIL is released,
   whatever another thread then does to the caller's dict; the references and
   pointers are scratch memory (core.h), where a copy of the dict would leave
   its size in the heap. */
static PyObject *
py_set_table(PyObject *module, PyObject *args)
{
    PyObject *classes, *name, *source, **held;
    struct name_list given = {0};
    Py_ssize_t position = 0, length;
    size_t count, i = 0, bytes;
    int append = 0, built = 0;
    if (!PyArg_ParseTuple(args, "O|p:set_table", &classes, &append))
        return NULL;
    if (!PyDict_CheckExact(classes)) {
        PyErr_Format(PyExc_TypeError, "set_table() takes a dict, not %R", classes);
        return NULL;
    }
#ifdef Py_GIL_DISABLED
    /* No GIL: another thread may change the dict while it is read. */
    if (!(classes = PyDict_Copy(classes)))
        return NULL;
#else
    Py_INCREF(classes); /* with the GIL, no Python code runs while it is read (an error's
                           repr runs after the last read) */
#endif
    count = (size_t)PyDict_Size(classes);
    bytes = (count + 1) * 2 * (sizeof(char *) + sizeof(PyObject *));
    if (!(given.names = scratch_alloc(bytes))) {
        Py_DECREF(classes);
        return PyErr_NoMemory();
    }
    given.sources = given.names + count + 1;
    held = (PyObject **)(given.sources + count + 1);
    while (i < count && PyDict_Next(classes, &position, &name, &source)) {
        const char *texts[2];
        int k;
        if (!PyUnicode_CheckExact(name) || !PyUnicode_Check(source)) {
            PyErr_Format(PyExc_TypeError,
                         "class names must be str (not a subclass), sources str, not %R: %R",
                         name, source);
            goto done;
        }
        for (k = 0; k < 2; k++) {
            if (!(texts[k] = PyUnicode_AsUTF8AndSize(k ? source : name, &length)))
                goto done;
            if (strlen(texts[k]) != (size_t)length) {
                PyErr_Format(PyExc_ValueError, "class names and sources cannot contain NUL: %R",
                             k ? source : name);
                goto done;
            }
        }
        Py_INCREF(name);
        Py_INCREF(source);
        held[2 * i] = name;
        held[2 * i + 1] = source;
        given.names[i] = texts[0];
        given.sources[i++] = texts[1];
    }
    given.count = i;
    Py_CLEAR(classes);
    WITHOUT_GIL_LOCKED(built = set_table(&given, append));
    if (!built)
        PyErr_SetString(PyExc_MemoryError,
                        "no memory for the class table, or its strings pass 4 GiB");
done:
    Py_XDECREF(classes);
    while (i > 0) {
        i--;
        Py_DECREF(held[2 * i]);
        Py_DECREF(held[2 * i + 1]);
    }
    scratch_free((void *)given.names, bytes);
    if (PyErr_Occurred())
        return NULL;
    Py_RETURN_NONE;
}

static int
register_or_fail(void)
{
    int error = register_handlers_once();
    if (error) {
        errno = error;
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    return 0;
}

/* Core dumps in forked children (their parent keeps its limit, and what a
   child execs keeps the child's); returns the old setting. */
static PyObject *
py_set_child_core_dumps(PyObject *module, PyObject *flag)
{
    int on = PyObject_IsTrue(flag);
    if (on < 0 || (!on && register_or_fail() < 0))
        return NULL;
    return PyBool_FromLong(!atomic_exchange(&no_child_cores, !on));
}

static PyObject *
py_set_installed(PyObject *module, PyObject *flag)
{
    int on = PyObject_IsTrue(flag);
    if (on < 0 || (on && register_or_fail() < 0))
        return NULL;
    return PyBool_FromLong(atomic_exchange(&installed, on));
}

/* A read of the switch: never looks anything up, never takes a lock. */
static PyObject *
py_is_installed(PyObject *module, PyObject *unused)
{
    return PyBool_FromLong(atomic_load(&installed));
}

/* Why objcprefork starts no +initialize here, where it would matter: the
   process is restricted, Apple's check is on, and a runtime is bound; else
   None. A read of flags, as is_installed. */
static PyObject *
py_withheld(PyObject *module, PyObject *unused)
{
    int withheld = atomic_load(&restricted) && !check_off_reason &&
                   atomic_load_explicit(&runtime_bound, memory_order_acquire);
    return runtime_str(withheld ? restricted_reason : NULL);
}

/* When installed: binds the runtime if one was loaded since the last look,
   looks up the listed classes when classes were added since the last pass,
   and, unless the process is restricted, forces the found ones. Returns how
   many it forced. With nothing to do it costs a few atomic loads. */
static PyObject *
py_force(PyObject *module, PyObject *unused)
{
    uint64_t forced = 0;
    if (!atomic_load(&installed))
        return PyLong_FromLong(0);
    Py_BEGIN_ALLOW_THREADS
    if (ensure_runtime())
        forced = force_listed();
    Py_END_ALLOW_THREADS
    return PyLong_FromUnsignedLongLong(forced);
}

/* A runtime string as str: the file-system encoding with surrogateescape,
   which never fails on bytes; None for NULL. */
static PyObject *
runtime_str(const char *text)
{
    if (!text)
        Py_RETURN_NONE;
    return PyUnicode_DecodeFSDefault(text);
}

static int
add_item(PyObject *dict, const char *key, PyObject *value)
{
    int result = value ? PyDict_SetItemString(dict, key, value) : -1;
    Py_XDECREF(value);
    return result;
}

/* Looks up (realizes, never initializes) the listed classes not found yet;
   the GIL is released. */
static void
find_listed(int bound)
{
    struct table *t = table_enter();
    size_t i;
    for (i = 0; bound && t && i < t->count; i++)
        if (!atomic_load(&t->entries[i].done))
            (void)find_class(t, &t->entries[i]);
    table_exit();
}

/* The listed classes in a compact form: one str of the names (each ended by
   NUL), one byte per state (an index into STATES), one (source, count) per
   run of entries with one source. Thousands of objects made and dropped would
   leave heap that every later fork copies; the buffer is scratch memory. */
static int
add_listed(PyObject *result, struct table *t, int blocked)
{
    size_t count = t ? t->count : 0, bytes = 0, i, run = 0;
    PyObject *sources = PyList_New(0);
    char *buffer, *name;
    int failed = !sources;
    for (i = 0; i < count; i++)
        bytes += strlen(entry_name(t, &t->entries[i])) + 1;
    if (!(buffer = scratch_alloc(count + bytes + 1))) {
        Py_XDECREF(sources);
        PyErr_NoMemory();
        return -1;
    }
    for (i = 0, name = buffer + count; i < count && !failed; i++) {
        struct entry *e = &t->entries[i];
        size_t size = strlen(entry_name(t, e)) + 1;
        buffer[i] = (char)(atomic_load(&e->done)     ? STATE_INITIALIZED
                           : !atomic_load(&e->found) ? STATE_NOT_LOADED
                           : blocked                 ? STATE_BLOCKED
                                                     : STATE_PENDING);
        memcpy(name, entry_name(t, e), size);
        name += size;
        if (i + 1 == count || t->entries[i + 1].source != e->source) {
            PyObject *item = Py_BuildValue("(sn)", table_strings(t) + e->source,
                                           (Py_ssize_t)(i + 1 - run));
            failed = !item || PyList_Append(sources, item) < 0;
            Py_XDECREF(item);
            run = i + 1;
        }
    }
    failed = failed ||
             add_item(result, "names",
                      PyUnicode_DecodeUTF8(buffer + count, (Py_ssize_t)bytes, NULL)) < 0 ||
             add_item(result, "states", PyBytes_FromStringAndSize(buffer, (Py_ssize_t)count)) < 0 ||
             PyDict_SetItemString(result, "sources", sources) < 0;
    Py_XDECREF(sources);
    scratch_free(buffer, count + bytes + 1);
    return failed ? -1 : 0;
}

static PyObject *
py_snapshot(PyObject *module, PyObject *unused)
{
    PyObject *result = PyDict_New();
    struct table *t;
    int lineage = atomic_load(&restricted), blocked = lineage && !check_off_reason;
    int bound = 0, failed;
    if (!result)
        return NULL;
    Py_BEGIN_ALLOW_THREADS
    bound = ensure_runtime();
    find_listed(bound);
    Py_END_ALLOW_THREADS
    t = table_enter();
    failed = add_listed(result, t, blocked) < 0;
    table_exit();
    if (failed ||
        add_item(result, "installed", PyBool_FromLong(atomic_load(&installed))) < 0 ||
        add_item(result, "restricted", runtime_str(blocked ? restricted_reason : NULL)) < 0 ||
        add_item(result, "check_off", runtime_str(check_off_reason)) < 0 ||
        add_item(result, "threaded_parent", PyBool_FromLong(lineage)) < 0 ||
        add_item(result, "child_core_dumps", PyBool_FromLong(!atomic_load(&no_child_cores))) < 0 ||
        add_item(result, "runtime", runtime_str(bound ? runtime.path : NULL)) < 0 ||
        add_item(result, "runtime_missing", runtime_str(bound ? NULL : atomic_load(&runtime_missing))) < 0 ||
        add_item(result, "forcing_call", runtime_str(bound ? runtime.forcing_call : NULL)) < 0 ||
        add_item(result, "load_signal", runtime_str(bound ? runtime.load_signal : NULL)) < 0 ||
        add_item(result, "diagnostics_missing",
                 runtime_str(bound ? diagnostics_missing : NULL)) < 0) {
        Py_DECREF(result);
        return NULL;
    }
    return result;
}

static int
append_row(PyObject *list, objc_class cls)
{
    struct class_row row;
    PyObject *dict;
    int result;
    if (!describe_class(cls, &row))
        return 0;
    dict = PyDict_New();
    result = dict && add_item(dict, "name", runtime_str(row.name)) == 0 &&
                     add_item(dict, "image", runtime_str(row.image)) == 0 &&
                     add_item(dict, "trivial", PyBool_FromLong(row.trivial)) == 0 &&
                     add_item(dict, "initializer", runtime_str(row.initializer)) == 0
                 ? PyList_Append(list, dict)
                 : -1;
    Py_XDECREF(dict);
    return result;
}

/* inspect(names or None) -> list of {name, image, trivial, initializer} for
   the named classes that are loaded, or for every loaded class; [] where
   the runtime lacks a diagnostic query (snapshot's diagnostics_missing). */
static PyObject *
py_inspect(PyObject *module, PyObject *names)
{
    PyObject *result;
    if (names != Py_None && !PyTuple_Check(names)) {
        PyErr_Format(PyExc_TypeError, "expected a tuple of str or None, not %R", names);
        return NULL;
    }
    if (!(result = PyList_New(0)) || !bound_now() || diagnostics_missing)
        return result;
    if (names != Py_None) {
        Py_ssize_t i, n = PyTuple_Size(names);
        for (i = 0; i < n; i++) {
            const char *name = PyUnicode_AsUTF8AndSize(PyTuple_GetItem(names, i), NULL);
            objc_class cls = name ? runtime.lookUpClass(name) : NULL;
            if (!name || (cls && append_row(result, cls) < 0)) {
                Py_DECREF(result);
                return NULL;
            }
        }
    } else {
        int count = 0, i;
        objc_class *classes = all_classes(&count);
        if (!classes) {
            Py_DECREF(result);
            return PyErr_NoMemory();
        }
        for (i = 0; i < count && result; i++)
            if (append_row(result, classes[i]) < 0)
                Py_CLEAR(result);
        free(classes);
    }
    return result;
}

static PyMethodDef methods[] = {
    {"set_table", py_set_table, METH_VARARGS,
     "set_table(classes, append=False): replace the class table with classes (name -> "
     "source, in order), or append the names it lacks."},
    {"set_installed", py_set_installed, METH_O,
     "Switch objcprefork on or off (the handlers are registered at first load); returns the "
     "old state."},
    {"is_installed", py_is_installed, METH_NOARGS, "Whether objcprefork is switched on."},
    {"withheld", py_withheld, METH_NOARGS,
     "Why no +initialize is started in this restricted process (Apple's check on, a "
     "runtime loaded), or None."},
    {"set_child_core_dumps", py_set_child_core_dumps, METH_O,
     "Allow or forbid core dumps in forked children (RLIMIT_CORE 0 there); returns the old "
     "setting."},
    {"force", py_force, METH_NOARGS,
     "When installed, run +initialize of the listed classes found, now, unless this process "
     "is restricted; returns how many. Releases the GIL."},
    {"snapshot", py_snapshot, METH_NOARGS, "The table, the runtime and the switches, as a dict."},
    {"inspect", py_inspect, METH_O,
     "{name, image, trivial, initializer} of the named loaded classes (a tuple), or of all (None)."},
    {NULL, NULL, 0, NULL},
};

static int
module_exec(PyObject *module)
{
    PyObject *pid = PySys_GetObject("_objcprefork_start_pid"); /* borrowed */
    long start_pid = pid && PyLong_Check(pid) ? PyLong_AsLong(pid) : 0;
    PyObject *states;
    int result;
    if (start_pid == -1 && PyErr_Occurred())
        PyErr_Clear();
    Py_BEGIN_ALLOW_THREADS first_load(start_pid); /* every interpreter waits for the first */
    Py_END_ALLOW_THREADS
    states = Py_BuildValue("(ssss)", state_names[0], state_names[1], state_names[2],
                           state_names[3]);
    result = states ? PyModule_AddObjectRef(module, "STATES", states) : -1;
    Py_XDECREF(states);
    return result;
}

static PyModuleDef_Slot slots[] = {
    {Py_mod_exec, module_exec},
#ifdef Py_mod_multiple_interpreters
    /* All state is process-wide, behind atomics and locks taken without the GIL. */
    {Py_mod_multiple_interpreters, Py_MOD_PER_INTERPRETER_GIL_SUPPORTED},
#endif
#ifdef Py_mod_gil
    {Py_mod_gil, Py_MOD_GIL_NOT_USED},
#endif
    {0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "objcprefork._objcprefork",
    .m_doc = "Native core of objcprefork: the class table and the fork handlers.",
    .m_size = 0,
    .m_methods = methods,
    .m_slots = slots,
};

PyMODINIT_FUNC
PyInit__objcprefork(void)
{
    return PyModuleDef_Init(&module_def);
}
