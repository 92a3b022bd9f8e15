/* A stand-in XDS plugin for the tests of lbnl_dask.xds_plugin: it checks how plugins are
   called and how their failures are reported, and reads no file. Its frames are 3 x 4
   pixels, 5 of them, pixel i of frame n holding 100 n + i. The file name it is given
   chooses a failure: "fail-open", "fail-header", "fail-data" (frame 2), "crash" (frame 2),
   "hang" (frame 2: it starts a second process, and both sleep a minute).
   Built by the tests: cc -shared -fPIC -o stub.so xds_stub_plugin.c */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static char name[4096];

void plugin_open(const char *filename, int info[1024], int *error_flag) {
  info[0] = 1;
  strncpy(name, filename, sizeof name - 1);
  *error_flag = strstr(name, "fail-open") ? -4 : 0;
  if (*error_flag) /* a message, then an indented trace below it, as durin writes */
    fprintf(stderr, "STUB ERROR: CANNOT OPEN %s\n\tstub.c - line 1\n\t\tinvalid location ID\n",
            filename);
}

void plugin_get_header(int *nx, int *ny, int *nbytes, float *qx, float *qy,
                       int *number_of_frames, int info[1024], int *error_flag) {
  *nx = 4;
  *ny = 3;
  *nbytes = 4;
  *qx = 75e-6f;
  *qy = 75e-6f;
  *number_of_frames = 5;
  *error_flag = strstr(name, "fail-header") ? -4 : 0;
}

void plugin_get_data(int *frame_number, int *nx, int *ny, int *data_array,
                     int info[1024], int *error_flag) {
  int i;
  if (*frame_number == 2 && strstr(name, "crash"))
    raise(SIGSEGV);
  if (*frame_number == 2 && strstr(name, "hang")) {
    fork();
    sleep(60);
  }
  if (*frame_number == 2 && strstr(name, "fail-data")) {
    fprintf(stderr, "STUB ERROR: CANNOT OPEN FRAME 2\n");
    *error_flag = -2;
    return;
  }
  for (i = 0; i < *nx * *ny; i++)
    data_array[i] = 100 * *frame_number + i;
  *error_flag = 0;
}

void plugin_close(int *error_flag) { *error_flag = 0; }
