//go:build cgo

package kspaceio

/*
#include <hdf5.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>

// H5Dvlen_reclaim became H5Treclaim in 1.12 (Debian bookworm ships 1.10).
#if H5_VERSION_GE(1, 12, 0)
#define ks_vlen_reclaim(t, s, p, b) H5Treclaim(t, s, p, b)
#else
#define ks_vlen_reclaim(t, s, p, b) H5Dvlen_reclaim(t, s, p, b)
#endif

// ---- errors: the HDF5 error stack becomes one line of text ----------------

typedef struct { char first[256], last[256]; int n; } ks_errs;

static herr_t ks_walk(unsigned n, const H5E_error2_t *e, void *p) {
	ks_errs *b = p;
	const char *d = e->desc ? e->desc : "";
	if (b->n == 0) snprintf(b->first, sizeof b->first, "%s", d);
	snprintf(b->last, sizeof b->last, "%s", d);
	b->n++;
	return 0;
}

// ks_fail writes "msg: outermost (innermost)" from the HDF5 error stack into
// err and clears the stack.
static int ks_fail(char *err, size_t cap, const char *msg) {
	ks_errs b;
	memset(&b, 0, sizeof b);
	H5Ewalk2(H5E_DEFAULT, H5E_WALK_DOWNWARD, ks_walk, &b);
	H5Eclear2(H5E_DEFAULT);
	if (b.n == 0) snprintf(err, cap, "%s", msg);
	else if (b.n == 1 || strcmp(b.first, b.last) == 0) snprintf(err, cap, "%s: %s", msg, b.first);
	else snprintf(err, cap, "%s: %s (%s)", msg, b.first, b.last);
	return -1;
}

// Printing is per thread in thread-safe builds, so every entry point turns
// it off.
static void ks_quiet(void) { H5Eset_auto2(H5E_DEFAULT, NULL, NULL); }

// ---- files and objects -----------------------------------------------------

// ---- nothing outside the file ---------------------------------------------
//
// By default HDF5 follows external links to other files and reads datasets
// stored in other files (external storage, virtual datasets). kspaced reads
// self-contained files only: every link in the file is checked when it is
// opened (ks_check_links), every dataset when it is opened (ks_open_dataset),
// and the access lists below refuse external-link traversal in any case.

static herr_t ks_deny_elink(const char *parent_file, const char *parent_group, const char *child_file,
	const char *child_object, unsigned *acc_flags, hid_t fapl, void *data) {
	return -1;
}

// ks_access returns a link, group or dataset access list that refuses to
// traverse external links and follows at most 8 soft links in a row.
static hid_t ks_access(hid_t cls) {
	hid_t pl = H5Pcreate(cls);
	H5Pset_elink_cb(pl, ks_deny_elink, NULL);
	H5Pset_nlinks(pl, 8);
	return pl;
}

#if H5_VERSION_GE(1, 12, 0)
typedef H5L_info2_t ks_linfo;
#else
typedef H5L_info_t ks_linfo;
#endif

typedef struct { char bad[256]; int type; long n; } ks_links;

static herr_t ks_link_cb(hid_t g, const char *name, const ks_linfo *info, void *p) {
	ks_links *l = p;
	if (++l->n > 100000) { l->type = -1; return 1; }
	if (info->type == H5L_TYPE_HARD || info->type == H5L_TYPE_SOFT) return 0;
	snprintf(l->bad, sizeof l->bad, "%s", name);
	l->type = info->type;
	return 1;
}

// ks_check_links refuses files holding external or user-defined links
// (which name objects in other files), and files of over 100 000 links.
static int ks_check_links(hid_t f, char *err, size_t cap) {
	ks_links l;
	memset(&l, 0, sizeof l);
	if (H5Lvisit(f, H5_INDEX_NAME, H5_ITER_NATIVE, ks_link_cb, &l) < 0) return ks_fail(err, cap, "list links");
	if (l.type == -1) { snprintf(err, cap, "more than 100000 links"); return -1; }
	if (l.type == H5L_TYPE_EXTERNAL) { snprintf(err, cap, "link /%s points to another file (external link); only self-contained files are read", l.bad); return -1; }
	if (l.type != 0) { snprintf(err, cap, "link /%s is a user-defined link (type %d); only self-contained files are read", l.bad, l.type); return -1; }
	return 0;
}

// HDF5 opens its file without O_CLOEXEC: a process started meanwhile (the
// reader child, a peer tool) would inherit the descriptor and with it the
// file's lock, and a later open of the file fails ("unable to lock file").
// The callers hold syscall.ForkLock so no fork falls between open and this.
static void ks_cloexec(hid_t f) {
	void *h = NULL;
	if (H5Fget_vfd_handle(f, H5P_DEFAULT, &h) < 0 || h == NULL) return;
	int fd = *(int *)h; // the default (sec2) driver's handle is its descriptor
	int fl = fcntl(fd, F_GETFD);
	if (fl >= 0) fcntl(fd, F_SETFD, fl | FD_CLOEXEC);
}

static hid_t ks_open(const char *path, int rw, char *err, size_t cap) {
	ks_quiet();
	hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
	H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG);
	hid_t f = H5Fopen(path, rw ? H5F_ACC_RDWR : H5F_ACC_RDONLY, fapl);
	if (f < 0) ks_fail(err, cap, "open"); // before any other call clears the stack
	else ks_cloexec(f);
	H5Pclose(fapl);
	if (f >= 0 && !rw && ks_check_links(f, err, cap) < 0) { H5Fclose(f); return -1; }
	return f;
}

static hid_t ks_create(const char *path, char *err, size_t cap) {
	ks_quiet();
	hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
	H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG);
	hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
	if (f < 0) ks_fail(err, cap, "create");
	else ks_cloexec(f);
	H5Pclose(fapl);
	return f;
}

static int ks_close(hid_t id, char *err, size_t cap) {
	ks_quiet();
	herr_t r;
	switch (H5Iget_type(id)) {
	case H5I_FILE: r = H5Fclose(id); break;
	case H5I_DATASET: r = H5Dclose(id); break;
	case H5I_GROUP: r = H5Gclose(id); break;
	default: r = H5Oclose(id);
	}
	if (r < 0) return ks_fail(err, cap, "close");
	return 0;
}

// ks_kind is 0 when loc has no link name, 1 for a group, 2 for a dataset,
// 3 for anything else, -1 on error. name must be a single component.
static int ks_kind(hid_t loc, const char *name) {
	ks_quiet();
	hid_t lapl = ks_access(H5P_LINK_ACCESS);
	htri_t ex = H5Lexists(loc, name, lapl);
	if (ex <= 0) { H5Pclose(lapl); H5Eclear2(H5E_DEFAULT); return ex < 0 ? -1 : 0; }
	hid_t o = H5Oopen(loc, name, lapl);
	H5Pclose(lapl);
	if (o < 0) { H5Eclear2(H5E_DEFAULT); return 3; }
	H5I_type_t t = H5Iget_type(o);
	H5Oclose(o);
	return t == H5I_GROUP ? 1 : t == H5I_DATASET ? 2 : 3;
}

static hid_t ks_open_group(hid_t loc, const char *name, char *err, size_t cap) {
	ks_quiet();
	hid_t gapl = ks_access(H5P_GROUP_ACCESS);
	hid_t g = H5Gopen2(loc, name, gapl);
	if (g < 0) ks_fail(err, cap, "open group");
	H5Pclose(gapl);
	return g;
}

static hid_t ks_open_dataset(hid_t loc, const char *name, size_t cache_bytes, char *err, size_t cap) {
	ks_quiet();
	hid_t dapl = ks_access(H5P_DATASET_ACCESS);
	if (cache_bytes) H5Pset_chunk_cache(dapl, 12421, cache_bytes, 1.0);
	hid_t d = H5Dopen2(loc, name, dapl);
	if (d < 0) ks_fail(err, cap, "open dataset");
	H5Pclose(dapl);
	if (d < 0) return d;
	// Refuse data kept in other files before anything is read.
	hid_t pl = H5Dget_create_plist(d);
	if (pl < 0) { H5Dclose(d); return ks_fail(err, cap, "dataset creation properties"); }
	int ext = H5Pget_external_count(pl);
	H5D_layout_t lay = H5Pget_layout(pl);
	H5Pclose(pl);
	if (ext != 0) { H5Dclose(d); H5Eclear2(H5E_DEFAULT); snprintf(err, cap, "dataset is stored in other files (external storage); only self-contained files are read"); return -1; }
	if (lay == H5D_VIRTUAL) { H5Dclose(d); snprintf(err, cap, "dataset is virtual (maps data of other files); only self-contained files are read"); return -1; }
	if (lay < 0) { H5Dclose(d); return ks_fail(err, cap, "dataset layout"); }
	return d;
}

// ---- dataset description ---------------------------------------------------

typedef struct {
	int rank;
	hsize_t dims[8];
	int tclass;      // H5T_class_t of the file type
	size_t tsize;    // file type size in bytes
	int vlen_str;    // variable-length string
	int nmembers;    // compound members
	int layout;      // H5D_layout_t
	int nfilters;
	hsize_t storage; // bytes allocated in the file
	char m0[32], m1[32]; // first two compound member names
	int c0, c1;          // their classes
} ks_info;

static int ks_dataset_info(hid_t d, ks_info *o, char *err, size_t cap) {
	ks_quiet();
	memset(o, 0, sizeof *o);
	hid_t s = H5Dget_space(d);
	if (s < 0) return ks_fail(err, cap, "dataspace");
	int r = H5Sget_simple_extent_ndims(s);
	if (r < 0 || r > 8) { H5Sclose(s); return ks_fail(err, cap, "rank above 8 or unreadable"); }
	o->rank = r;
	H5Sget_simple_extent_dims(s, o->dims, NULL);
	H5Sclose(s);
	hid_t t = H5Dget_type(d);
	if (t < 0) return ks_fail(err, cap, "datatype");
	o->tclass = H5Tget_class(t);
	o->tsize = H5Tget_size(t);
	if (o->tclass == H5T_STRING) o->vlen_str = H5Tis_variable_str(t) > 0;
	if (o->tclass == H5T_COMPOUND) {
		o->nmembers = H5Tget_nmembers(t);
		for (int i = 0; i < 2 && i < o->nmembers; i++) {
			char *nm = H5Tget_member_name(t, i);
			if (nm) { snprintf(i ? o->m1 : o->m0, 32, "%s", nm); H5free_memory(nm); }
			if (i) o->c1 = H5Tget_member_class(t, i); else o->c0 = H5Tget_member_class(t, i);
		}
	}
	H5Tclose(t);
	hid_t pl = H5Dget_create_plist(d);
	if (pl >= 0) {
		o->layout = H5Pget_layout(pl);
		o->nfilters = H5Pget_nfilters(pl);
		H5Pclose(pl);
	}
	o->storage = H5Dget_storage_size(d);
	H5Eclear2(H5E_DEFAULT);
	return 0;
}

// ---- reading ---------------------------------------------------------------

// select count[0..rank) elements from start[] (NULL start: everything).
static int ks_select(hid_t d, int rank, const hsize_t *start, const hsize_t *count, hid_t *fs, hid_t *ms) {
	*fs = H5Dget_space(d);
	if (*fs < 0) return -1;
	if (!start) { *ms = H5S_ALL; H5Sclose(*fs); *fs = H5S_ALL; return 0; }
	if (H5Sselect_hyperslab(*fs, H5S_SELECT_SET, start, NULL, count, NULL) < 0) { H5Sclose(*fs); return -1; }
	hsize_t n = 1;
	for (int i = 0; i < rank; i++) n *= count[i];
	*ms = H5Screate_simple(1, &n, NULL);
	return 0;
}

static void ks_unselect(hid_t fs, hid_t ms) {
	if (fs != H5S_ALL) H5Sclose(fs);
	if (ms != H5S_ALL) H5Sclose(ms);
}

// ks_compound_fits checks that every member of compound t, and of the
// compounds nested in it, lies inside its parent: HDF5 converts a file type
// whose member offset or size lies by reading past its buffer (a segfault
// FuzzISMRMRD and FuzzFastMRI found with a few changed bytes).
static int ks_compound_fits(hid_t t, int depth) {
	size_t size = H5Tget_size(t);
	int n = H5Tget_nmembers(t);
	if (size == 0 || n < 0 || depth > 4) return 0;
	for (int i = 0; i < n; i++) {
		size_t off = H5Tget_member_offset(t, (unsigned)i);
		hid_t m = H5Tget_member_type(t, (unsigned)i);
		if (m < 0) return 0;
		size_t ms = H5Tget_size(m);
		int ok = ms > 0 && off <= size && ms <= size - off;
		if (ok && H5Tget_class(m) == H5T_COMPOUND) ok = ks_compound_fits(m, depth + 1);
		H5Tclose(m);
		if (!ok) return 0;
	}
	return 1;
}

// ks_read_complex reads a compound of two floats (names re, im) as float32
// pairs straight into buf.
static int ks_read_complex(hid_t d, const char *re, const char *im, int rank, const hsize_t *start, const hsize_t *count, void *buf, char *err, size_t cap) {
	ks_quiet();
	hid_t ft = H5Dget_type(d);
	if (ft < 0) return ks_fail(err, cap, "datatype");
	int fits = H5Tget_class(ft) != H5T_COMPOUND || ks_compound_fits(ft, 0);
	H5Tclose(ft);
	if (!fits) { snprintf(err, cap, "complex type has a field outside its record"); return -1; }
	hid_t mt = H5Tcreate(H5T_COMPOUND, 8);
	H5Tinsert(mt, re, 0, H5T_NATIVE_FLOAT);
	H5Tinsert(mt, im, 4, H5T_NATIVE_FLOAT);
	hid_t fs, ms;
	if (ks_select(d, rank, start, count, &fs, &ms) < 0) { ks_fail(err, cap, "select"); H5Tclose(mt); return -1; }
	herr_t r = H5Dread(d, mt, ms, fs, H5P_DEFAULT, buf);
	if (r < 0) ks_fail(err, cap, "read");
	ks_unselect(fs, ms);
	H5Tclose(mt);
	return r < 0 ? -1 : 0;
	return 0;
}

// ks_read_double reads an integer, float or enum (through its integer base)
// dataset of n elements as doubles.
static int ks_read_double(hid_t d, double *buf, hsize_t n, char *err, size_t cap) {
	ks_quiet();
	hid_t t = H5Dget_type(d);
	if (t < 0) return ks_fail(err, cap, "datatype");
	herr_t r;
	if (H5Tget_class(t) == H5T_ENUM) {
		hid_t base = H5Tget_super(t);
		hid_t nt = H5Tget_native_type(t, H5T_DIR_ASCEND);
		size_t sz = H5Tget_size(nt);
		int sgn = H5Tget_sign(base);
		unsigned char *tmp = malloc(n * sz + 1);
		r = tmp ? H5Dread(d, nt, H5S_ALL, H5S_ALL, H5P_DEFAULT, tmp) : -1;
		if (r < 0) ks_fail(err, cap, "read");
		for (hsize_t i = 0; r >= 0 && i < n; i++) {
			unsigned char *p = tmp + i * sz;
			switch (sz) {
			case 1: buf[i] = sgn ? (double)*(int8_t *)p : (double)*(uint8_t *)p; break;
			case 2: buf[i] = sgn ? (double)*(int16_t *)p : (double)*(uint16_t *)p; break;
			case 4: buf[i] = sgn ? (double)*(int32_t *)p : (double)*(uint32_t *)p; break;
			default: buf[i] = sgn ? (double)*(int64_t *)p : (double)*(uint64_t *)p;
			}
		}
		free(tmp);
		H5Tclose(nt);
		H5Tclose(base);
	} else {
		r = H5Dread(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf);
		if (r < 0) ks_fail(err, cap, "read");
	}
	H5Tclose(t);
	return r < 0 ? -1 : 0;
}

typedef struct { size_t max; int refused; } ks_limit;

static void *ks_limited_alloc(size_t n, void *info) {
	ks_limit *l = info;
	if (n > l->max) { l->refused = 1; return NULL; }
	return malloc(n);
}

static void ks_limited_free(void *p, void *info) { free(p); }

// ks_read_string returns the first string of a scalar or 1-D string dataset
// in a malloc'd buffer, refusing anything longer than max bytes.
static int ks_read_string(hid_t d, size_t max, char **out, size_t *len, char *err, size_t cap) {
	ks_quiet();
	*out = NULL; *len = 0;
	hid_t t = H5Dget_type(d);
	if (t < 0) return ks_fail(err, cap, "datatype");
	if (H5Tget_class(t) != H5T_STRING) { H5Tclose(t); return ks_fail(err, cap, "not a string dataset"); }
	hid_t fs = H5Dget_space(d);
	int rank = H5Sget_simple_extent_ndims(fs);
	hssize_t np = H5Sget_simple_extent_npoints(fs);
	if (rank > 1 || np < 1) { H5Sclose(fs); H5Tclose(t); return ks_fail(err, cap, "want a scalar or one string"); }
	hsize_t one = 1, zero = 0;
	if (rank == 1) H5Sselect_hyperslab(fs, H5S_SELECT_SET, &zero, NULL, &one, NULL);
	hid_t ms = H5Screate(H5S_SCALAR);
	hid_t mt = H5Tcopy(H5T_C_S1);
	H5Tset_cset(mt, H5Tget_cset(t)); // HDF5 does not convert between ASCII and UTF-8
	int rc = 0;
	if (H5Tis_variable_str(t) > 0) {
		// H5Dvlen_get_buf_size crashes on variable-length strings in 1.10,
		// so the size is bounded by an allocator that refuses more than max.
		H5Tset_size(mt, H5T_VARIABLE);
		ks_limit lim = { max + 1, 0 };
		hid_t xfer = H5Pcreate(H5P_DATASET_XFER);
		H5Pset_vlen_mem_manager(xfer, ks_limited_alloc, &lim, ks_limited_free, NULL);
		char *s = NULL;
		if (H5Dread(d, mt, ms, fs, xfer, &s) < 0) {
			rc = ks_fail(err, cap, "read");
			if (lim.refused) snprintf(err, cap, "string longer than %zu bytes", max);
		} else if (s) {
			*len = strlen(s);
			*out = s; // malloc'd by ks_limited_alloc: the caller frees it
		}
		H5Pclose(xfer);
	} else {
		size_t sz = H5Tget_size(t);
		if (sz > max) { snprintf(err, cap, "string of %zu bytes exceeds %zu", sz, max); rc = -1; }
		else {
			H5Tset_size(mt, sz);
			H5Tset_strpad(mt, H5T_STR_NULLPAD);
			char *s = calloc(sz + 1, 1);
			if (H5Dread(d, mt, ms, fs, H5P_DEFAULT, s) < 0) { rc = ks_fail(err, cap, "read"); free(s); }
			else { *len = strnlen(s, sz); *out = s; }
		}
	}
	H5Tclose(mt); H5Sclose(ms); H5Sclose(fs); H5Tclose(t);
	return rc;
}

// ---- ISMRMRD acquisitions --------------------------------------------------

typedef struct {
	uint16_t e1, e2, average, slice, contrast, phase, repetition, set;
} ks_idx;

typedef struct {
	uint64_t flags;
	uint16_t number_of_samples, active_channels, discard_pre, discard_post, center_sample, encoding_space_ref;
	float sample_time_us;
	ks_idx idx;
} ks_head;

typedef struct { ks_head head; } ks_acq_head;
typedef struct { hvl_t data; } ks_acq_data;

static hid_t ks_head_type(void) {
	hid_t idx = H5Tcreate(H5T_COMPOUND, sizeof(ks_idx));
	H5Tinsert(idx, "kspace_encode_step_1", HOFFSET(ks_idx, e1), H5T_NATIVE_UINT16);
	H5Tinsert(idx, "kspace_encode_step_2", HOFFSET(ks_idx, e2), H5T_NATIVE_UINT16);
	H5Tinsert(idx, "average", HOFFSET(ks_idx, average), H5T_NATIVE_UINT16);
	H5Tinsert(idx, "slice", HOFFSET(ks_idx, slice), H5T_NATIVE_UINT16);
	H5Tinsert(idx, "contrast", HOFFSET(ks_idx, contrast), H5T_NATIVE_UINT16);
	H5Tinsert(idx, "phase", HOFFSET(ks_idx, phase), H5T_NATIVE_UINT16);
	H5Tinsert(idx, "repetition", HOFFSET(ks_idx, repetition), H5T_NATIVE_UINT16);
	H5Tinsert(idx, "set", HOFFSET(ks_idx, set), H5T_NATIVE_UINT16);
	hid_t h = H5Tcreate(H5T_COMPOUND, sizeof(ks_head));
	H5Tinsert(h, "flags", HOFFSET(ks_head, flags), H5T_NATIVE_UINT64);
	H5Tinsert(h, "number_of_samples", HOFFSET(ks_head, number_of_samples), H5T_NATIVE_UINT16);
	H5Tinsert(h, "active_channels", HOFFSET(ks_head, active_channels), H5T_NATIVE_UINT16);
	H5Tinsert(h, "discard_pre", HOFFSET(ks_head, discard_pre), H5T_NATIVE_UINT16);
	H5Tinsert(h, "discard_post", HOFFSET(ks_head, discard_post), H5T_NATIVE_UINT16);
	H5Tinsert(h, "center_sample", HOFFSET(ks_head, center_sample), H5T_NATIVE_UINT16);
	H5Tinsert(h, "encoding_space_ref", HOFFSET(ks_head, encoding_space_ref), H5T_NATIVE_UINT16);
	H5Tinsert(h, "sample_time_us", HOFFSET(ks_head, sample_time_us), H5T_NATIVE_FLOAT);
	H5Tinsert(h, "idx", HOFFSET(ks_head, idx), idx);
	H5Tclose(idx);
	hid_t a = H5Tcreate(H5T_COMPOUND, sizeof(ks_acq_head));
	H5Tinsert(a, "head", 0, h);
	H5Tclose(h);
	return a;
}

// has_members checks that compound t holds every name in the NULL-ended list.
static const char *ks_missing(hid_t t, const char **names) {
	for (; *names; names++)
		if (H5Tget_member_index(t, *names) < 0) { H5Eclear2(H5E_DEFAULT); return *names; }
	return NULL;
}

// ks_check_acq verifies the file type is an ISMRMRD acquisition: compound
// with head (carrying every field we read) and a variable-length data field,
// every member inside its compound.
static int ks_check_acq(hid_t d, char *err, size_t cap) {
	ks_quiet();
	static const char *top[] = {"head", "data", NULL};
	static const char *head[] = {"flags", "number_of_samples", "active_channels", "discard_pre", "discard_post",
		"center_sample", "encoding_space_ref", "sample_time_us", "idx", NULL};
	static const char *idx[] = {"kspace_encode_step_1", "kspace_encode_step_2", "average", "slice", "contrast",
		"phase", "repetition", "set", NULL};
	hid_t t = H5Dget_type(d);
	if (t < 0) return ks_fail(err, cap, "datatype");
	int rc = 0;
	const char *miss;
	hid_t h = -1, x = -1, dt = -1;
	if (H5Tget_class(t) != H5T_COMPOUND) { snprintf(err, cap, "acquisitions are not a compound type"); rc = -1; goto out; }
	if (!ks_compound_fits(t, 0)) { snprintf(err, cap, "acquisition type has a field outside its record"); rc = -1; goto out; }
	if ((miss = ks_missing(t, top))) { snprintf(err, cap, "acquisition type has no field %s", miss); rc = -1; goto out; }
	h = H5Tget_member_type(t, H5Tget_member_index(t, "head"));
	dt = H5Tget_member_type(t, H5Tget_member_index(t, "data"));
	if (H5Tget_class(h) != H5T_COMPOUND || (miss = ks_missing(h, head))) {
		snprintf(err, cap, "acquisition head has no field %s", H5Tget_class(h) != H5T_COMPOUND ? "(not a compound)" : miss); rc = -1; goto out;
	}
	x = H5Tget_member_type(h, H5Tget_member_index(h, "idx"));
	if (H5Tget_class(x) != H5T_COMPOUND || (miss = ks_missing(x, idx))) {
		snprintf(err, cap, "acquisition head.idx has no field %s", H5Tget_class(x) != H5T_COMPOUND ? "(not a compound)" : miss); rc = -1; goto out;
	}
	if (H5Tget_class(dt) != H5T_VLEN) { snprintf(err, cap, "acquisition data is not variable-length"); rc = -1; goto out; }
	{
		hid_t b = H5Tget_super(dt);
		int ok = H5Tget_class(b) == H5T_FLOAT;
		H5Tclose(b);
		if (!ok) { snprintf(err, cap, "acquisition data is not a sequence of floats"); rc = -1; goto out; }
	}
out:
	if (x >= 0) H5Tclose(x);
	if (h >= 0) H5Tclose(h);
	if (dt >= 0) H5Tclose(dt);
	H5Tclose(t);
	H5Eclear2(H5E_DEFAULT);
	return rc;
}

static int ks_read_heads(hid_t d, hsize_t start, hsize_t count, ks_acq_head *out, char *err, size_t cap) {
	ks_quiet();
	hid_t mt = ks_head_type();
	hid_t fs, ms;
	if (ks_select(d, 1, &start, &count, &fs, &ms) < 0) { ks_fail(err, cap, "select"); H5Tclose(mt); return -1; }
	memset(out, 0, count * sizeof *out);
	herr_t r = H5Dread(d, mt, ms, fs, H5P_DEFAULT, out);
	if (r < 0) ks_fail(err, cap, "read acquisition headers");
	ks_unselect(fs, ms);
	H5Tclose(mt);
	return r < 0 ? -1 : 0;
}

// Variable-length data are allocated from one arena per batch instead of one
// malloc per acquisition; the arena is sized from the headers, and anything
// beyond it (a lying header) falls back to malloc and is freed on reclaim.
typedef struct { char *base; size_t cap, used; } ks_arena;

static void *ks_arena_alloc(size_t n, void *info) {
	ks_arena *a = info;
	size_t need = (n + 15) & ~(size_t)15;
	if (a->base && a->used + need <= a->cap) { void *p = a->base + a->used; a->used += need; return p; }
	return malloc(n);
}

static void ks_arena_free(void *p, void *info) {
	ks_arena *a = info;
	if (a->base && (char *)p >= a->base && (char *)p < a->base + a->cap) return;
	free(p);
}

typedef struct { hid_t mt, xfer; ks_arena arena; } ks_reader;

static ks_reader *ks_data_reader(size_t arena_bytes) {
	ks_reader *r = calloc(1, sizeof *r);
	if (!r) return NULL;
	r->arena.base = malloc(arena_bytes);
	r->arena.cap = r->arena.base ? arena_bytes : 0;
	hid_t vl = H5Tvlen_create(H5T_NATIVE_FLOAT);
	r->mt = H5Tcreate(H5T_COMPOUND, sizeof(ks_acq_data));
	H5Tinsert(r->mt, "data", 0, vl);
	H5Tclose(vl);
	r->xfer = H5Pcreate(H5P_DATASET_XFER);
	H5Pset_vlen_mem_manager(r->xfer, ks_arena_alloc, &r->arena, ks_arena_free, &r->arena);
	return r;
}

static void ks_free_reader(ks_reader *r) {
	if (!r) return;
	H5Tclose(r->mt);
	H5Pclose(r->xfer);
	free(r->arena.base);
	free(r);
}

// ks_read_data reads count acquisitions' data; ks_reclaim must follow.
static int ks_read_data(ks_reader *r, hid_t d, hsize_t start, hsize_t count, ks_acq_data *out, char *err, size_t cap) {
	ks_quiet();
	r->arena.used = 0;
	hid_t fs, ms;
	if (ks_select(d, 1, &start, &count, &fs, &ms) < 0) return ks_fail(err, cap, "select");
	memset(out, 0, count * sizeof *out);
	herr_t rc = H5Dread(d, r->mt, ms, fs, r->xfer, out);
	if (rc < 0) {
		ks_fail(err, cap, "read acquisition data");
		ks_vlen_reclaim(r->mt, ms, r->xfer, out);
		ks_unselect(fs, ms);
		return -1;
	}
	ks_unselect(fs, ms);
	return 0;
}

static void ks_reclaim(ks_reader *r, hsize_t count, ks_acq_data *out) {
	hid_t ms = H5Screate_simple(1, &count, NULL);
	ks_vlen_reclaim(r->mt, ms, r->xfer, out);
	H5Sclose(ms);
	H5Eclear2(H5E_DEFAULT);
}

// ---- attributes ------------------------------------------------------------

typedef struct {
	char name[256];
	int tclass, sign, vlen_str;
	size_t tsize;
	hssize_t npoints;
	int rank;
} ks_attr;

static herr_t ks_count_cb(hid_t loc, const char *name, const H5A_info_t *info, void *p) { (*(int *)p)++; return 0; }

static int ks_attr_count(hid_t loc) {
	ks_quiet();
	int n = 0;
	hsize_t idx = 0;
	if (H5Aiterate2(loc, H5_INDEX_NAME, H5_ITER_INC, &idx, ks_count_cb, &n) < 0) { H5Eclear2(H5E_DEFAULT); return -1; }
	return n;
}

static int ks_attr_info(hid_t loc, int i, ks_attr *o, char *err, size_t cap) {
	ks_quiet();
	memset(o, 0, sizeof *o);
	hid_t a = H5Aopen_by_idx(loc, ".", H5_INDEX_NAME, H5_ITER_INC, (hsize_t)i, H5P_DEFAULT, H5P_DEFAULT);
	if (a < 0) return ks_fail(err, cap, "open attribute");
	H5Aget_name(a, sizeof o->name, o->name);
	hid_t t = H5Aget_type(a), s = H5Aget_space(a);
	o->tclass = H5Tget_class(t);
	o->tsize = H5Tget_size(t);
	if (o->tclass == H5T_INTEGER) o->sign = H5Tget_sign(t);
	if (o->tclass == H5T_STRING) o->vlen_str = H5Tis_variable_str(t) > 0;
	o->npoints = H5Sget_simple_extent_npoints(s);
	o->rank = H5Sget_simple_extent_ndims(s);
	H5Tclose(t); H5Sclose(s); H5Aclose(a);
	H5Eclear2(H5E_DEFAULT);
	return 0;
}

// ks_attr_read reads attribute i as doubles (kind 0), int64 (kind 1) or
// a string (kind 2, into buf of cap bytes, NUL-terminated).
static int ks_attr_read(hid_t loc, int i, int kind, void *buf, size_t bufcap, char *err, size_t cap) {
	ks_quiet();
	if (cap) err[0] = 0;
	hid_t a = H5Aopen_by_idx(loc, ".", H5_INDEX_NAME, H5_ITER_INC, (hsize_t)i, H5P_DEFAULT, H5P_DEFAULT);
	if (a < 0) return ks_fail(err, cap, "open attribute");
	herr_t r = -1;
	if (kind == 0) r = H5Aread(a, H5T_NATIVE_DOUBLE, buf);
	else if (kind == 1) r = H5Aread(a, H5T_NATIVE_INT64, buf);
	if (kind < 2 && r < 0) ks_fail(err, cap, "read attribute");
	else {
		hid_t t = H5Aget_type(a);
		hid_t mt = H5Tcopy(H5T_C_S1);
		H5Tset_cset(mt, H5Tget_cset(t));
		if (H5Tis_variable_str(t) > 0) {
			H5Tset_size(mt, H5T_VARIABLE);
			char *s = NULL;
			r = H5Aread(a, mt, &s);
			if (r < 0) ks_fail(err, cap, "read attribute");
			if (r >= 0 && s) { snprintf(buf, bufcap, "%s", s); H5free_memory(s); }
		} else {
			size_t sz = H5Tget_size(t);
			if (sz < bufcap) {
				H5Tset_size(mt, sz);
				H5Tset_strpad(mt, H5T_STR_NULLPAD);
				memset(buf, 0, bufcap);
				r = H5Aread(a, mt, buf);
				if (r < 0) ks_fail(err, cap, "read attribute");
			}
		}
		H5Tclose(mt); H5Tclose(t);
	}
	H5Aclose(a);
	if (r < 0 && !err[0]) snprintf(err, cap, "read attribute: string longer than %zu bytes", bufcap);
	return r < 0 ? -1 : 0;
}

// ---- writing ---------------------------------------------------------------

static hid_t ks_complex_file_type(void) {
	hid_t t = H5Tcreate(H5T_COMPOUND, 8);
	H5Tinsert(t, "r", 0, H5T_IEEE_F32LE);
	H5Tinsert(t, "i", 4, H5T_IEEE_F32LE);
	return t;
}

static hid_t ks_mem_type(int kind) {
	if (kind != 0) return H5Tcopy(H5T_NATIVE_FLOAT);
	hid_t mt = H5Tcreate(H5T_COMPOUND, 8);
	H5Tinsert(mt, "r", 0, H5T_NATIVE_FLOAT);
	H5Tinsert(mt, "i", 4, H5T_NATIVE_FLOAT);
	return mt;
}

// ks_create_ds creates a rank-dimensional dataset; kind 0 is complex64
// (h5py's {r, i} compound), kind 1 float32. gzip > 0 chunks by the leading
// index and deflates.
static hid_t ks_create_ds(hid_t loc, const char *name, int kind, int rank, const hsize_t *dims, int gzip, char *err, size_t cap) {
	ks_quiet();
	hid_t ft = kind == 0 ? ks_complex_file_type() : H5Tcopy(H5T_IEEE_F32LE);
	hid_t s = H5Screate_simple(rank, dims, NULL);
	hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
	if (gzip > 0 && rank > 0) {
		hsize_t ch[8];
		for (int i = 0; i < rank && i < 8; i++) ch[i] = dims[i] ? dims[i] : 1;
		ch[0] = 1;
		H5Pset_chunk(dcpl, rank, ch);
		H5Pset_deflate(dcpl, gzip);
	}
	hid_t d = H5Dcreate2(loc, name, ft, s, H5P_DEFAULT, dcpl, H5P_DEFAULT);
	if (d < 0) ks_fail(err, cap, "create dataset");
	H5Pclose(dcpl); H5Sclose(s); H5Tclose(ft);
	return d;
}

// ks_write_slab writes buf into the hyperslab start/count (NULL: all).
static int ks_write_slab(hid_t d, int kind, int rank, const hsize_t *start, const hsize_t *count, const void *buf, char *err, size_t cap) {
	ks_quiet();
	hid_t mt = ks_mem_type(kind);
	hid_t fs, ms;
	if (ks_select(d, rank, start, count, &fs, &ms) < 0) { ks_fail(err, cap, "select"); H5Tclose(mt); return -1; }
	herr_t r = H5Dwrite(d, mt, ms, fs, H5P_DEFAULT, buf);
	if (r < 0) ks_fail(err, cap, "write");
	ks_unselect(fs, ms);
	H5Tclose(mt);
	return r < 0 ? -1 : 0;
}

// ks_write_string writes a scalar fixed-length string dataset (as fastMRI's
// ismrmrd_header is stored).
static int ks_write_string(hid_t loc, const char *name, const char *str, size_t len, char *err, size_t cap) {
	ks_quiet();
	hid_t t = H5Tcopy(H5T_C_S1);
	H5Tset_size(t, len ? len : 1);
	H5Tset_strpad(t, H5T_STR_NULLPAD);
	hid_t s = H5Screate(H5S_SCALAR);
	hid_t d = H5Dcreate2(loc, name, t, s, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
	int rc = 0;
	if (d < 0) rc = ks_fail(err, cap, "create string dataset");
	else {
		if (H5Dwrite(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, str) < 0) rc = ks_fail(err, cap, "write string");
		H5Dclose(d);
	}
	H5Sclose(s); H5Tclose(t);
	return rc;
}

// ks_write_attr writes a root attribute: kind 0 doubles, 1 int64, 2 a
// variable-length UTF-8 string (as h5py writes str). n > 1 makes a 1-D array.
static int ks_write_attr(hid_t loc, const char *name, int kind, const void *buf, hsize_t n, char *err, size_t cap) {
	ks_quiet();
	hid_t ft, mt;
	if (kind == 0) { ft = H5Tcopy(H5T_IEEE_F64LE); mt = H5Tcopy(H5T_NATIVE_DOUBLE); }
	else if (kind == 1) { ft = H5Tcopy(H5T_STD_I64LE); mt = H5Tcopy(H5T_NATIVE_INT64); }
	else {
		ft = H5Tcopy(H5T_C_S1);
		H5Tset_size(ft, H5T_VARIABLE);
		H5Tset_cset(ft, H5T_CSET_UTF8);
		mt = H5Tcopy(ft);
	}
	hid_t s = kind == 2 || n == 1 ? H5Screate(H5S_SCALAR) : H5Screate_simple(1, &n, NULL);
	hid_t a = H5Acreate2(loc, name, ft, s, H5P_DEFAULT, H5P_DEFAULT);
	int rc = 0;
	if (a < 0) rc = ks_fail(err, cap, "create attribute");
	else {
		herr_t r = kind == 2 ? H5Awrite(a, mt, &buf) : H5Awrite(a, mt, buf);
		if (r < 0) rc = ks_fail(err, cap, "write attribute");
		H5Aclose(a);
	}
	H5Sclose(s); H5Tclose(mt); H5Tclose(ft);
	return rc;
}
*/
import "C"

import (
	"errors"
	"fmt"
	"math"
	"runtime"
	"sync"
	"syscall"
	"unsafe"
)

// hdf5Mu serialises every use of the HDF5 library: the thread-safe build
// serialises calls anyway, and a non-thread-safe build would need it.
var hdf5Mu sync.Mutex

// withHDF5 runs f holding the library lock on one OS thread, since the HDF5
// error stack (which h5 errors are read from) is per thread.
func withHDF5(f func() error) error {
	hdf5Mu.Lock()
	defer hdf5Mu.Unlock()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	return f()
}

const errCap = 1024

type cerr [errCap]C.char

func (e *cerr) ptr() *C.char { return &e[0] }
func (e *cerr) err() error   { return errors.New(C.GoString(&e[0])) }

// h5 is an open HDF5 file or object id.
type h5 struct{ id C.hid_t }

func h5Open(path string, write bool) (h5, error) {
	var e cerr
	cp := C.CString(path)
	defer C.free(unsafe.Pointer(cp))
	rw := C.int(0)
	if write {
		rw = 1
	}
	syscall.ForkLock.RLock() // see ks_cloexec
	id := C.ks_open(cp, rw, e.ptr(), errCap)
	syscall.ForkLock.RUnlock()
	if id < 0 {
		return h5{}, e.err()
	}
	return h5{id}, nil
}

func h5Create(path string) (h5, error) {
	var e cerr
	cp := C.CString(path)
	defer C.free(unsafe.Pointer(cp))
	syscall.ForkLock.RLock() // see ks_cloexec
	id := C.ks_create(cp, e.ptr(), errCap)
	syscall.ForkLock.RUnlock()
	if id < 0 {
		return h5{}, e.err()
	}
	return h5{id}, nil
}

func (o h5) close() error {
	var e cerr
	if C.ks_close(o.id, e.ptr(), errCap) < 0 {
		return e.err()
	}
	return nil
}

const (
	kindNone = iota
	kindGroup
	kindDataset
	kindOther
)

func (o h5) kind(name string) int {
	cn := C.CString(name)
	defer C.free(unsafe.Pointer(cn))
	k := int(C.ks_kind(o.id, cn))
	if k < 0 {
		return kindNone
	}
	return k
}

func (o h5) group(name string) (h5, error) {
	var e cerr
	cn := C.CString(name)
	defer C.free(unsafe.Pointer(cn))
	id := C.ks_open_group(o.id, cn, e.ptr(), errCap)
	if id < 0 {
		return h5{}, fmt.Errorf("%s: %w", name, e.err())
	}
	return h5{id}, nil
}

func (o h5) dataset(name string, cacheBytes int) (h5, error) {
	var e cerr
	cn := C.CString(name)
	defer C.free(unsafe.Pointer(cn))
	id := C.ks_open_dataset(o.id, cn, C.size_t(cacheBytes), e.ptr(), errCap)
	if id < 0 {
		return h5{}, fmt.Errorf("%s: %w", name, e.err())
	}
	return h5{id}, nil
}

// Type classes (H5T_class_t).
const (
	classInteger  = C.H5T_INTEGER
	classFloat    = C.H5T_FLOAT
	classString   = C.H5T_STRING
	classCompound = C.H5T_COMPOUND
	classEnum     = C.H5T_ENUM
)

type dsInfo struct {
	dims     []int64
	class    int
	size     int
	vlenStr  bool
	members  int
	m0, m1   string
	c0, c1   int
	filters  int
	storage  int64
	chunked  bool
	elements int64 // product of dims, or -1 when it overflows MaxElements
}

func (o h5) info() (dsInfo, error) {
	var ci C.ks_info
	var e cerr
	if C.ks_dataset_info(o.id, &ci, e.ptr(), errCap) < 0 {
		return dsInfo{}, e.err()
	}
	d := dsInfo{class: int(ci.tclass), size: int(ci.tsize), vlenStr: ci.vlen_str != 0, members: int(ci.nmembers),
		m0: C.GoString(&ci.m0[0]), m1: C.GoString(&ci.m1[0]), c0: int(ci.c0), c1: int(ci.c1),
		filters: int(ci.nfilters), storage: int64(ci.storage), chunked: ci.layout == C.H5D_CHUNKED, elements: 1}
	for i := 0; i < int(ci.rank); i++ {
		v := uint64(ci.dims[i])
		d.dims = append(d.dims, int64(min(v, math.MaxInt64)))
		if d.elements >= 0 && v != 0 && uint64(d.elements) > MaxElements/v {
			d.elements = -1
		} else if d.elements >= 0 {
			d.elements *= int64(v)
		}
	}
	return d, nil
}

// byteBudget is what one read may still decompress and allocate from the
// datasets it reads (Limits.MaxBytes), shared by every dataset of a file.
type byteBudget struct{ left int64 }

// checkStorage compares the bytes a dataset announces with what the file
// stores, and takes them from the read's budget, before anything is
// allocated from the announced shape. A compressed dataset may announce at
// most maxCompression times its stored bytes.
func (d dsInfo) checkStorage(b *byteBudget) error {
	if d.elements < 0 {
		return fmt.Errorf("shape %v exceeds %d elements", d.dims, int64(MaxElements))
	}
	want := d.elements * int64(d.size)
	switch {
	case want == 0:
		return nil
	case d.storage == 0:
		return fmt.Errorf("shape %v announces %d bytes but no data is stored", d.dims, want)
	case d.filters == 0 && d.storage < want:
		return fmt.Errorf("shape %v announces %d bytes but only %d are stored", d.dims, want, d.storage)
	case d.filters > 0 && want/maxCompression > d.storage:
		return fmt.Errorf("shape %v announces %d bytes from %d compressed bytes, more than %d times (a decompression bomb?)", d.dims, want, d.storage, maxCompression)
	case want > b.left:
		return fmt.Errorf("shape %v announces %d bytes, beyond what one file may bring into memory (%d left of the limit)", d.dims, want, b.left)
	}
	b.left -= want
	return nil
}

// readComplex reads the whole dataset (start == nil) or a hyperslab into
// dst, which must hold exactly the selected elements.
func (o h5) readComplex(re, im string, start, count []int64, dst []complex64) error {
	var e cerr
	cre, cim := C.CString(re), C.CString(im)
	defer C.free(unsafe.Pointer(cre))
	defer C.free(unsafe.Pointer(cim))
	var ps, pc *C.hsize_t
	if start != nil {
		s, c := make([]C.hsize_t, len(start)), make([]C.hsize_t, len(count))
		for i := range start {
			s[i], c[i] = C.hsize_t(start[i]), C.hsize_t(count[i])
		}
		ps, pc = &s[0], &c[0]
		defer runtime.KeepAlive(s)
		defer runtime.KeepAlive(c)
	}
	if len(dst) == 0 {
		return nil
	}
	if C.ks_read_complex(o.id, cre, cim, C.int(len(start)), ps, pc, unsafe.Pointer(&dst[0]), e.ptr(), errCap) < 0 {
		return e.err()
	}
	return nil
}

func (o h5) readFloat64(dst []float64) error {
	if len(dst) == 0 {
		return nil
	}
	var e cerr
	if C.ks_read_double(o.id, (*C.double)(&dst[0]), C.hsize_t(len(dst)), e.ptr(), errCap) < 0 {
		return e.err()
	}
	return nil
}

func (o h5) readString(max int) (string, error) {
	var e cerr
	var p *C.char
	var n C.size_t
	if C.ks_read_string(o.id, C.size_t(max), &p, &n, e.ptr(), errCap) < 0 {
		return "", e.err()
	}
	if p == nil {
		return "", nil
	}
	defer C.free(unsafe.Pointer(p))
	return C.GoStringN(p, C.int(n)), nil
}

func (o h5) checkAcquisitions() error {
	var e cerr
	if C.ks_check_acq(o.id, e.ptr(), errCap) < 0 {
		return e.err()
	}
	return nil
}

// readHeads reads acquisition headers [start, start+len(dst)).
func (o h5) readHeads(start int, dst []acqHead) error {
	const batch = 4096
	buf := make([]C.ks_acq_head, min(batch, len(dst)))
	for off := 0; off < len(dst); off += batch {
		n := min(batch, len(dst)-off)
		var e cerr
		if C.ks_read_heads(o.id, C.hsize_t(start+off), C.hsize_t(n), &buf[0], e.ptr(), errCap) < 0 {
			return e.err()
		}
		for i := 0; i < n; i++ {
			h := &buf[i].head
			dst[off+i] = acqHead{Flags: uint64(h.flags), Samples: uint16(h.number_of_samples), Channels: uint16(h.active_channels),
				DiscardPre: uint16(h.discard_pre), DiscardPost: uint16(h.discard_post), CenterSample: uint16(h.center_sample),
				EncodingRef: uint16(h.encoding_space_ref), DwellUs: float32(h.sample_time_us),
				E1: uint16(h.idx.e1), E2: uint16(h.idx.e2), Average: uint16(h.idx.average), Slice: uint16(h.idx.slice),
				Contrast: uint16(h.idx.contrast), Phase: uint16(h.idx.phase), Repetition: uint16(h.idx.repetition), Set: uint16(h.idx.set)}
		}
	}
	return nil
}

// dataReader reads acquisition data in batches through an arena.
type dataReader struct {
	r   *C.ks_reader
	buf *C.ks_acq_data // C array of the batch's hvl_t
	cap int
}

func newDataReader(maxBatch int, arenaBytes int64) (*dataReader, error) {
	r := C.ks_data_reader(C.size_t(arenaBytes))
	if r == nil {
		return nil, errors.New("out of memory for the acquisition reader")
	}
	buf := (*C.ks_acq_data)(C.calloc(C.size_t(maxBatch), C.size_t(unsafe.Sizeof(C.ks_acq_data{}))))
	if buf == nil {
		C.ks_free_reader(r)
		return nil, errors.New("out of memory for the acquisition reader")
	}
	return &dataReader{r: r, buf: buf, cap: maxBatch}, nil
}

func (d *dataReader) free() {
	C.free(unsafe.Pointer(d.buf))
	C.ks_free_reader(d.r)
}

// read reads acquisitions [start, start+n) and calls f with each one's
// floats, which are valid only during the call.
func (d *dataReader) read(o h5, start, n int, f func(i int, data []float32) error) error {
	var e cerr
	if C.ks_read_data(d.r, o.id, C.hsize_t(start), C.hsize_t(n), d.buf, e.ptr(), errCap) < 0 {
		return e.err()
	}
	defer C.ks_reclaim(d.r, C.hsize_t(n), d.buf)
	items := unsafe.Slice(d.buf, n)
	for i := range items {
		v := items[i].data
		var data []float32
		if v.len > 0 && v.p != nil {
			if uint64(v.len) > MaxElements {
				return fmt.Errorf("acquisition %d: %d values", start+i, uint64(v.len))
			}
			data = unsafe.Slice((*float32)(v.p), int(v.len))
		}
		if err := f(start+i, data); err != nil {
			return err
		}
	}
	return nil
}

// attrs reads the object's attributes: numbers as float64 or int64 (arrays
// of up to 4096 as slices) and strings up to 64 KiB. Others (enums,
// compounds, references) are skipped.
func (o h5) attrs() (map[string]any, error) {
	n := int(C.ks_attr_count(o.id))
	out := map[string]any{}
	for i := 0; i < n && i < 1024; i++ {
		var a C.ks_attr
		var e cerr
		if C.ks_attr_info(o.id, C.int(i), &a, e.ptr(), errCap) < 0 {
			return nil, e.err()
		}
		name := C.GoString(&a.name[0])
		np := int64(a.npoints)
		if np < 1 || np > 4096 {
			continue
		}
		switch a.tclass {
		case classFloat:
			v := make([]float64, np)
			if C.ks_attr_read(o.id, C.int(i), 0, unsafe.Pointer(&v[0]), 0, e.ptr(), errCap) < 0 {
				return nil, fmt.Errorf("attribute %s: %w", name, e.err())
			}
			if np == 1 && a.rank == 0 {
				out[name] = v[0]
			} else {
				out[name] = v
			}
		case classInteger:
			v := make([]int64, np)
			if C.ks_attr_read(o.id, C.int(i), 1, unsafe.Pointer(&v[0]), 0, e.ptr(), errCap) < 0 {
				return nil, fmt.Errorf("attribute %s: %w", name, e.err())
			}
			if np == 1 && a.rank == 0 {
				out[name] = v[0]
			} else {
				out[name] = v
			}
		case classString:
			if np != 1 {
				continue
			}
			buf := make([]byte, 1<<16)
			if C.ks_attr_read(o.id, C.int(i), 2, unsafe.Pointer(&buf[0]), C.size_t(len(buf)), e.ptr(), errCap) < 0 {
				continue // longer than 64 KiB, or unreadable: not ours to keep
			}
			out[name] = C.GoString((*C.char)(unsafe.Pointer(&buf[0])))
		}
	}
	return out, nil
}

func (o h5) writeComplex(name string, dims []int, data []complex64, gzip int) error {
	return o.writeSlabs(name, 0, dims, 1, func(int) any { return data }, gzip)
}

func (o h5) writeFloat32(name string, dims []int, data []float32) error {
	return o.writeSlabs(name, 1, dims, 1, func(int) any { return data }, 0)
}

// writeSlabs creates dataset name of shape dims (kind 0 complex64, 1
// float32) and writes it as n equal slabs along the first axis, slab i
// from part(i) ([]complex64 or []float32), so callers need not gather
// their data into one buffer.
func (o h5) writeSlabs(name string, kind int, dims []int, n int, part func(i int) any, gzip int) error {
	if len(dims) == 0 || len(dims) > 8 || n < 1 || dims[0]%n != 0 {
		return fmt.Errorf("%s: bad shape %v for %d parts", name, dims, n)
	}
	cd := make([]C.hsize_t, len(dims))
	total := 1
	for i, d := range dims {
		if d < 1 {
			return fmt.Errorf("%s: bad shape %v", name, dims)
		}
		cd[i] = C.hsize_t(d)
		total *= d
	}
	per := total / n
	var e cerr
	cn := C.CString(name)
	defer C.free(unsafe.Pointer(cn))
	d := C.ks_create_ds(o.id, cn, C.int(kind), C.int(len(dims)), &cd[0], C.int(gzip), e.ptr(), errCap)
	if d < 0 {
		return fmt.Errorf("%s: %w", name, e.err())
	}
	ds, closed := h5{d}, false
	defer func() {
		if !closed {
			ds.close()
		}
	}()
	start := make([]C.hsize_t, len(dims))
	count := append([]C.hsize_t(nil), cd...)
	count[0] = C.hsize_t(dims[0] / n)
	for i := 0; i < n; i++ {
		var p unsafe.Pointer
		var got int
		switch x := part(i).(type) {
		case []complex64:
			if kind != 0 {
				return fmt.Errorf("%s: complex data for a real dataset", name)
			}
			p, got = unsafe.Pointer(unsafe.SliceData(x)), len(x)
		case []float32:
			if kind != 1 {
				return fmt.Errorf("%s: real data for a complex dataset", name)
			}
			p, got = unsafe.Pointer(unsafe.SliceData(x)), len(x)
		default:
			return fmt.Errorf("%s: unsupported data %T", name, x)
		}
		if got != per {
			return fmt.Errorf("%s: part %d has %d values, want %d", name, i, got, per)
		}
		start[0] = C.hsize_t(i * (dims[0] / n))
		if C.ks_write_slab(d, C.int(kind), C.int(len(dims)), &start[0], &count[0], p, e.ptr(), errCap) < 0 {
			return fmt.Errorf("%s: %w", name, e.err())
		}
	}
	closed = true
	return ds.close()
}

func (o h5) writeString(name, s string) error {
	var e cerr
	cn, cs := C.CString(name), C.CString(s)
	defer C.free(unsafe.Pointer(cn))
	defer C.free(unsafe.Pointer(cs))
	if C.ks_write_string(o.id, cn, cs, C.size_t(len(s)), e.ptr(), errCap) < 0 {
		return fmt.Errorf("%s: %w", name, e.err())
	}
	return nil
}

// writeAttr writes one attribute value: string, bool, any integer or float
// type, or a slice of float64/int/int64.
func (o h5) writeAttr(name string, v any) error {
	var e cerr
	cn := C.CString(name)
	defer C.free(unsafe.Pointer(cn))
	var rc C.int
	f64 := func(xs ...float64) C.int {
		return C.ks_write_attr(o.id, cn, 0, unsafe.Pointer(&xs[0]), C.hsize_t(len(xs)), e.ptr(), errCap)
	}
	i64 := func(xs ...int64) C.int {
		return C.ks_write_attr(o.id, cn, 1, unsafe.Pointer(&xs[0]), C.hsize_t(len(xs)), e.ptr(), errCap)
	}
	switch x := v.(type) {
	case string:
		cs := C.CString(x)
		defer C.free(unsafe.Pointer(cs))
		rc = C.ks_write_attr(o.id, cn, 2, unsafe.Pointer(cs), 1, e.ptr(), errCap)
	case bool:
		b := int64(0)
		if x {
			b = 1
		}
		rc = i64(b)
	case float64:
		rc = f64(x)
	case float32:
		rc = f64(float64(x))
	case int:
		rc = i64(int64(x))
	case int64:
		rc = i64(x)
	case int32:
		rc = i64(int64(x))
	case uint16:
		rc = i64(int64(x))
	case uint32:
		rc = i64(int64(x))
	case []float64:
		if len(x) == 0 {
			return fmt.Errorf("attribute %s: empty array", name)
		}
		rc = f64(x...)
	case []int64:
		if len(x) == 0 {
			return fmt.Errorf("attribute %s: empty array", name)
		}
		rc = i64(x...)
	case []int:
		if len(x) == 0 {
			return fmt.Errorf("attribute %s: empty array", name)
		}
		xs := make([]int64, len(x))
		for i, y := range x {
			xs[i] = int64(y)
		}
		rc = i64(xs...)
	default:
		return fmt.Errorf("attribute %s: unsupported type %T", name, v)
	}
	if rc < 0 {
		return fmt.Errorf("attribute %s: %w", name, e.err())
	}
	return nil
}
