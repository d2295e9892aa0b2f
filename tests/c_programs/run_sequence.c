/* run_sequence BLOB RUNS DIR: runs a blob RUNS times in one session of the C runtime, for tests of stateful
 * models.  Run k reads input i from DIR/in_<k>_<i>.bin and writes output j to DIR/out_<k>_<j>.bin. */
#include <stdio.h>
#include <stdlib.h>

#include "npu_runtime.h"

static int fail(const npu_error *err)
{
    fprintf(stderr, "run_sequence: %s\n", err->message);
    return 1;
}

int main(int argc, char **argv)
{
    npu_blob *blob = NULL;
    npu_session *session = NULL;
    npu_error err;
    char path[4096];
    if (argc != 4)
        return fprintf(stderr, "usage: run_sequence BLOB RUNS DIR\n"), 2;
    if (npu_blob_load_file(argv[1], &blob, &err) || npu_open(blob, NULL, &session, &err))
        return fail(&err);
    for (int k = 0; k < atoi(argv[2]); k++) {
        npu_tensor_desc d;
        for (unsigned i = 0; npu_blob_describe(blob, NPU_INPUT, i, &d) == 0; i++) {
            unsigned char *data;
            size_t size;
            snprintf(path, sizeof path, "%s/in_%d_%u.bin", argv[3], k, i);
            if (npu_read_file(path, "an input", NPU_ERR_INPUT, &data, &size, &err)
                || npu_set_input(session, i, data, size, &err))
                return fail(&err);
            free(data);
        }
        if (npu_run(session, &err))
            return fail(&err);
        for (unsigned j = 0; npu_blob_describe(blob, NPU_OUTPUT, j, &d) == 0; j++) {
            unsigned char *data = malloc(d.size);
            snprintf(path, sizeof path, "%s/out_%d_%u.bin", argv[3], k, j);
            FILE *f = fopen(path, "wb");
            if (!data || !f || npu_get_output(session, j, data, d.size, &err)
                || fwrite(data, 1, d.size, f) != d.size)
                return fprintf(stderr, "run_sequence: cannot write %s\n", path), 1;
            fclose(f);
            free(data);
        }
    }
    npu_close(session);
    npu_blob_free(blob);
    return 0;
}
